"""Listings that fit a Slack section: whole lines only, and a note of what was left out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.domain.paging import Page

SECTION_LIMIT = 3000  # Slack's limit for a section's text
CAP_NOTE = 50_000  # counts stop there (bot/store)


def fitted(head: str, lines: Sequence[str], tail: str = "", limit: int = SECTION_LIMIT) -> str:
    """``head``, as many whole ``lines`` as fit under ``limit`` with ``tail``, then ``tail``:
    never a line (nor a ``<!date...>`` token in it) cut in the middle. Lines that do not fit
    are counted in a note instead."""
    shown: list[str] = []
    used = len(head) + len(tail) + 2 + 80  # room for the "not shown" note
    for line in lines:
        if used + len(line) + 1 > limit:
            break
        shown.append(line)
        used += len(line) + 1
    dropped = len(lines) - len(shown)
    body = [head, *shown]
    if dropped:
        body.append(f"… {dropped:,} more on this page did not fit; ask for fewer (a model)")
    return "\n".join(part for part in (*body, tail) if part)


def paging_note(page: Page[Any], noun: str, command: str) -> str:
    """ "runs 11-20 of 10,000 · 9,980 more: `<command> page=3`", or "" when all are shown."""
    if page.total <= len(page.items) and page.number == 1:
        return ""
    plus = "+" if page.total >= CAP_NOTE else ""  # the store stopped counting there
    first, last = page.offset + 1, page.offset + len(page.items)
    where = f"{noun} {first:,}-{last:,} of {page.total:,}{plus}"
    if not page.items:
        where = f"no {noun} on page {page.number:,} (there are {page.total:,}{plus})"
    more = f" · {page.after:,}{plus} more: `{command} page={page.number + 1}`" if page.after else ""
    return f"_{where}{more}_"
