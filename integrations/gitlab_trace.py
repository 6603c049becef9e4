"""The tail of a CI job's log, read as a stream: memory stays bounded whatever the trace size."""

from __future__ import annotations

import re
from collections import deque

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MAX_LINE = 16 * 1024
"""Bytes kept of one line: a line longer than this (a progress bar redrawn with ``\\r`` for
hours, a dumped tensor) keeps only its end, which is what a terminal would show."""


class TailBuffer:
    """Keeps the last ``lines`` complete lines of a byte stream fed in chunks, each at most
    ``max_line`` bytes, plus the unfinished line: memory is bounded by lines x max_line."""

    def __init__(self, lines: int, *, max_line: int = MAX_LINE) -> None:
        self.kept: deque[bytes] = deque(maxlen=max(lines, 0) + 1)
        self.partial = bytearray()
        self.max_line = max_line
        self.size = 0

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            self._add_partial(chunk[start:end])
            self.kept.append(bytes(self.partial))
            self.partial.clear()
            start = end + 1
        self._add_partial(chunk[start:])

    def _add_partial(self, piece: bytes) -> None:
        self.partial += piece[-self.max_line :]
        if len(self.partial) > self.max_line:
            del self.partial[: len(self.partial) - self.max_line]

    def text(self) -> str:
        """What was kept, decoded (bad UTF-8 replaced); ends with the unfinished line."""
        parts = [*self.kept, bytes(self.partial)] if self.partial else list(self.kept)
        return "\n".join(p.decode("utf-8", errors="replace") for p in parts)


def tail(text: str, lines: int) -> str:
    """The last ``lines`` lines of a CI log, without ANSI codes; ``a\\rb`` shows as ``b``."""
    if lines <= 0:
        return ""
    shown = [_ANSI.sub("", line.rstrip("\r")).rsplit("\r", 1)[-1] for line in text.split("\n")]
    if shown and shown[-1] == "":
        shown.pop()
    return "\n".join(shown[-lines:])
