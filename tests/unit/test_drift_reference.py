"""reference.json: the parser's messages, the builder, and the example training code's output."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.domain.monitoring.profiles import build_reference, reference_from_sample
from bot.domain.monitoring.reference import (
    CategoricalProfile,
    NumericProfile,
    ReferenceError,
    parse_reference,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "monitoring"


def valid() -> dict[str, Any]:
    return {
        "format": "mlops-bot/reference@1",
        "rows": 10,
        "features": {
            "amount": {"type": "numeric", "edges": [1.0, 5.0], "counts": [3, 4, 2], "missing": 1},
            "country": {"type": "categorical", "counts": {"DE": 6, "FR": 3}, "other": 1},
        },
        "prediction": {"type": "categorical", "counts": {"ok": 9, "fraud": 1}},
    }


def problems(data: object) -> list[str]:
    with pytest.raises(ReferenceError) as caught:
        parse_reference(json.dumps(data).encode())
    return caught.value.issues


def test_a_valid_profile_round_trips() -> None:
    reference = parse_reference(json.dumps(valid()).encode())
    assert reference.features["amount"] == NumericProfile((1.0, 5.0), (3, 4, 2), 1)
    assert reference.features["country"] == CategoricalProfile({"DE": 6, "FR": 3}, 1, 0)
    assert set(reference.profiles()) == {"amount", "country", "prediction"}
    assert parse_reference(reference.dumps()) == reference


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(format="v2"), "format: must be 'mlops-bot/reference@1', not 'v2'"),
        (lambda d: d.update(rows=0), "rows: must be a positive whole number"),
        (lambda d: d["features"]["amount"].update(edges=[5.0, 1.0]), "edges must increase"),
        (lambda d: d["features"]["amount"].update(counts=[1, 2]), "len(edges) + 1 = 3 counts"),
        (lambda d: d["features"]["amount"].update(edges=[1, "x"]), "edges[1]: must be a finite"),
        (
            lambda d: d["features"]["country"].update(counts={"DE": -1}),
            "counts.DE: must be a whole",
        ),
        (
            lambda d: d["features"]["country"].update(type="text"),
            "must be 'numeric' or 'categorical'",
        ),
        (lambda d: d["features"]["amount"].update(missing=3), "add up to 12, but rows is 10"),
        (lambda d: d.update(features={}), "features: must be an object with one profile"),
        (lambda d: d.update(extra=1), "unknown keys ['extra']"),
    ],
)
def test_each_problem_says_where_and_what_is_right(change: Any, expected: str) -> None:
    data = valid()
    change(data)
    assert any(expected in line for line in problems(data)), problems(data)


def test_every_problem_is_listed_at_once() -> None:
    data = valid()
    data["rows"] = -1
    data["features"]["country"]["type"] = "text"
    lines = problems(data)
    assert len(lines) == 2 and lines[0].startswith("rows:")


def test_not_json_is_said_plainly() -> None:
    with pytest.raises(ReferenceError, match="not valid JSON"):
        parse_reference(b"{nope")


def test_the_builder_bins_by_quantiles_and_merges_ties() -> None:
    reference = build_reference(
        {"x": [float(i) for i in range(100)], "n": [1, 1, 1, 2, 2, None] * 5 + [3] * 70},
        ["a"] * 60 + ["b"] * 40,
        bins=4,
    )
    x, n = reference.features["x"], reference.features["n"]
    assert isinstance(x, NumericProfile) and x.counts == (25, 25, 25, 25)
    assert isinstance(n, NumericProfile) and n.missing == 5
    assert (n.edges, n.counts) == ((2.0, 3.0), (25, 70, 0))  # quartiles 2, 3, 3: one edge at 3
    assert reference.prediction == CategoricalProfile({"a": 60, "b": 40})
    assert parse_reference(reference.dumps()) == reference


def test_a_reference_sample_file_is_accepted_instead() -> None:
    lines = [
        json.dumps(
            {
                "features": {"amount": i * 1.5, "country": "DE" if i % 3 else "FR"},
                "prediction": i % 2,
            }
        )
        for i in range(50)
    ]
    reference = reference_from_sample("\n".join(lines).encode())
    assert reference.rows == 50
    assert isinstance(reference.features["amount"], NumericProfile)
    assert reference.features["country"] == CategoricalProfile({"DE": 33, "FR": 17})
    with pytest.raises(ReferenceError, match='sample line 2: must be an object with "features"'):
        reference_from_sample(lines[0].encode() + b"\n[1]\n")


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("reference_example", EXAMPLES / "reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_training_code_writes_what_the_bot_reads(tmp_path: Path) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        train = importlib.import_module("train")
        train.main(tmp_path)
    finally:
        sys.path.remove(str(EXAMPLES))
        sys.modules.pop("train", None)
        sys.modules.pop("reference", None)
    written = parse_reference((tmp_path / "reference.json").read_bytes())
    columns = load_example()
    data = train.test_set()
    predicted = json.loads((tmp_path / "reference.json").read_text())
    assert predicted["rows"] == written.rows == 5000
    rebuilt = build_reference(
        {k: [v.item() if hasattr(v, "item") else v for v in vs] for k, vs in data.items()},
        ["fraud" if a > 150 else "ok" for a in data["amount"]],
    )
    assert written.features == rebuilt.features
    assert written.prediction == rebuilt.prediction
    assert columns.FORMAT == "mlops-bot/reference@1"
