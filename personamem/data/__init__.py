"""PersonaMem-v2 data: the release loader and the one chat-rendering format."""

from .loader import (
    ChatHistory,
    DataError,
    DataWarning,
    LoadIssue,
    QAItem,
    Release,
    load_history,
    load_release,
    question_id,
)
from .render import render_message, render_messages

__all__ = [
    "ChatHistory",
    "DataError",
    "DataWarning",
    "LoadIssue",
    "QAItem",
    "Release",
    "load_history",
    "load_release",
    "question_id",
    "render_message",
    "render_messages",
]
