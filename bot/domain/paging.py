"""One page of a longer listing, and how much of the listing it leaves out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """``items`` are entries ``offset + 1 .. offset + len(items)`` of ``total``."""

    items: Sequence[T]
    total: int
    number: int = 1  # 1-based
    size: int = 10

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    @property
    def after(self) -> int:
        """How many entries come after this page."""
        return max(0, self.total - self.offset - len(self.items))

    @property
    def before(self) -> int:
        return min(self.offset, self.total)


def offset_of(number: int, size: int) -> int:
    return (max(1, number) - 1) * size
