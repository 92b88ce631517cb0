"""Answering from a context: MCQ (debiased letter scoring or parsed generation) and open-ended."""

from .answerer import Answer, Answerer, fit_history
from .parse import LETTERS, parse_choice

__all__ = ["LETTERS", "Answer", "Answerer", "fit_history", "parse_choice"]
