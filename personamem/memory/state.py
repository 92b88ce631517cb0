"""The memory: human-readable lines about one user, each citing the messages behind it."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

EMPTY = "No previous memory."
_CITE = re.compile(r"\s*\[(?:msg|msgs|messages?)?\s*(\d+(?:\s*,\s*\d+)*)\]\s*$", re.I)


class MemoryLine(BaseModel):
    """One statement about the user and the history indices of the messages supporting it."""

    text: str
    sources: list[int] = Field(default_factory=list)
    score: float | None = None
    """How personal the model judged the statement (select strategy); decides what the cap drops."""
    evidence: str | None = None
    """The user's own words the line was written from (select strategy with notes), for audit."""

    def render(self, sources: bool = True) -> str:
        cite = f" [msg {', '.join(map(str, self.sources))}]" if sources and self.sources else ""
        return f"- {self.text}{cite}"


class MemoryState(BaseModel):
    """A user's memory after some number of chunks, plus what it cost to build.

    ``text`` (lines with citations) is what a person reads and edits and what the token cap
    applies to; :meth:`context` (lines without citations) is what answers are conditioned on.
    """

    lines: list[MemoryLine] = Field(default_factory=list)
    chunks_done: int = 0
    next_message: int = 0
    forgotten: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    tokens: int = 0

    @property
    def text(self) -> str:
        return "\n".join(line.render() for line in self.lines) if self.lines else EMPTY

    def context(self) -> str:
        """The memory as given to the answering model (no citations)."""
        return "\n".join(line.render(sources=False) for line in self.lines) if self.lines else EMPTY

    @classmethod
    def from_text(cls, text: str) -> MemoryState:
        """Parse memory text a person edited: one statement per line, optional ``[msg 3, 7]``;
        ``<!-- ... -->`` comment lines are skipped."""
        lines: list[MemoryLine] = []
        for raw in text.splitlines():
            s = raw.strip()
            if not s or s == EMPTY or (s.startswith("<!--") and s.endswith("-->")):
                continue  # blank, the empty marker, or a comment (a run folder's source line)
            s = re.sub(r"^(?:[-*•]|\d+[.)])\s*", "", s)
            sources: list[int] = []
            m = _CITE.search(s)
            if m:
                sources = [int(x) for x in re.findall(r"\d+", m.group(1))]
                s = s[: m.start()].rstrip()
            if s:
                lines.append(MemoryLine(text=s, sources=sources))
        return cls(lines=lines)
