"""The edge's form parser gives what the standard library's parse_qsl gives (it replaced it on
the ack path for speed), hostile bodies included."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.slack_requests import (
    MAX_FIELDS,
    Malformed,
    classify,
    form_pairs,
    vocabulary,
)

FORM = "application/x-www-form-urlencoded"
# the characters that mean something in a form body, percent escapes good and bad, and text
PIECES = st.sampled_from(["&", "=", "+", "%", "%2", "%41", "%C3%A9", "%FF", "%E2%82", ";", "a"])
BODIES = st.lists(PIECES | st.text(max_size=4), max_size=30).map("".join)


def stdlib(text: str) -> list[tuple[str, str]]:
    return parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)


@given(BODIES)
def test_form_pairs_match_parse_qsl(text: str) -> None:
    assert form_pairs(text) == stdlib(text)


@pytest.mark.parametrize("fields", [MAX_FIELDS - 1, MAX_FIELDS, MAX_FIELDS + 1])
def test_the_field_limit_is_the_same(fields: int) -> None:
    text = "&".join(f"f{i}=v" for i in range(fields))

    outcomes = []
    for parse in (form_pairs, stdlib):
        try:
            outcomes.append(len(parse(text)))
        except ValueError:
            outcomes.append(-1)

    assert outcomes[0] == outcomes[1] == (fields if fields <= MAX_FIELDS else -1)


def test_a_body_past_the_field_limit_is_malformed() -> None:
    body = "&".join(f"f{i}=v" for i in range(MAX_FIELDS + 1)).encode()

    verdict = classify(body, FORM, vocabulary())

    assert isinstance(verdict, Malformed) and verdict.reason.startswith("not a form body")


def test_a_slash_command_form_is_decoded() -> None:
    body = b"command=%2Ftrain&text=list+fraud+%C3%A9&user_id=U1&channel_id=C1&trigger_id=t.1"

    verdict = classify(body, FORM, vocabulary())

    assert getattr(verdict, "payload", None) == {
        "command": "/train",
        "text": "list fraud é",
        "user_id": "U1",
        "channel_id": "C1",
        "trigger_id": "t.1",
    }
