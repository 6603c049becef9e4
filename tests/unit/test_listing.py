"""Listings: pages, what they leave out, whole lines only; the paging options of the grammar."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.domain.paging import Page
from bot.domain.runs import Run, RunState
from bot.errors import UserInputError
from bot.intents import DeployHistory, TrainList
from bot.views.listing import fitted, paging_note
from bot.views.runs import run_list
from handlers.parsing import Catalog, parse_deploy, parse_train

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CATALOG = Catalog({"fraud": ["stg", "prod"]})
RUN = Run(1, "fraud", "gitlab", RunState.RUNNING, "U0ALICE", "main", AT)


def test_lines_that_do_not_fit_are_counted_never_cut() -> None:
    line = "x" * 500 + "<!date^1740830400^{date_short_pretty} {time}|2025-03-01 12:00 UTC>"
    text = fitted("*head*", [line] * 10, "_tail_")
    assert len(text) <= 3000
    assert text.count("<!date^") == text.count("UTC>") == 5
    assert "… 5 more on this page did not fit" in text and text.endswith("_tail_")


def test_the_note_says_which_entries_and_how_many_more() -> None:
    assert paging_note(Page([1, 2], 2), "runs", "/train list") == ""
    note = paging_note(Page(list(range(10)), 95, number=3, size=10), "runs", "/train list x")
    assert note == "_runs 21-30 of 95 · 65 more: `/train list x page=4`_"
    assert "49,999+ more" in paging_note(Page([1], 50_000, size=1), "runs", "/t")
    assert "no runs on page 9 (there are 3)" in paging_note(Page([], 3, 9), "runs", "/t")


def test_a_full_page_of_very_long_refs_stays_whole() -> None:
    runs = [replace(RUN, id=n, ref="r" * 255) for n in range(1, 11)]
    message = run_list(Page(runs, 40, size=10), Page([], 0), "fraud")
    body = message.blocks[0]["text"]["text"]
    assert len(body) <= 3000 and body.count("<!date^") == 10 and "did not fit" not in body
    assert "30 more: `/train list fraud page=2`" in body


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("list", TrainList()),
        ("list more", TrainList(page=2)),
        ("list fraud page=12", TrainList("fraud", page=12)),
        ("list fraud more", TrainList("fraud", page=2)),
    ],
)
def test_train_list_takes_a_page(text: str, intent: TrainList) -> None:
    assert parse_train(text, CATALOG) == intent


def test_history_takes_a_page() -> None:
    assert parse_deploy("fraud history prod page=3", CATALOG) == DeployHistory("fraud", "prod", 3)
    assert parse_deploy("fraud history prod more", CATALOG) == DeployHistory("fraud", "prod", 2)


@pytest.mark.parametrize(
    "text", ["list page=0", "list page=x", "list page=10001", "list more page=2", "list fraud y"]
)
def test_bad_pages_say_what_is_valid(text: str) -> None:
    with pytest.raises(UserInputError) as err:
        parse_train(text, CATALOG)
    assert "page" in str(err.value) and "/train help list" in str(err.value)
