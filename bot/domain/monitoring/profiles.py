"""Building a reference profile from a sample: what the training job (or the bot, given a
reference sample file instead of reference.json) does. numpy is imported where it is used."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.domain.monitoring.reference import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    Reference,
    ReferenceError,
    category,
    is_number,
)

BINS = 10
MAX_KEPT_CATEGORIES = 200
MAX_SAMPLE_ISSUES = 5


def is_numeric_column(values: Sequence[object]) -> bool:
    """Numbers (and missing values) only; booleans are categories."""
    return all(v is None or is_number(v) or _is_nan(v) for v in values)


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def numeric_profile(values: Sequence[float | None], bins: int = BINS) -> NumericProfile:
    """Quantile edges (duplicates dropped, so tied values share a bin) and the counts of the
    same values counted with the rule a window is counted with (``searchsorted``, left)."""
    import numpy as np

    if isinstance(values, np.ndarray):
        array = values.astype(np.float64)
    else:
        array = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    present = array[~np.isnan(array)]
    missing = int(array.size - present.size)
    if present.size == 0:
        return NumericProfile((), (0,), missing)
    cuts = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = np.unique(cuts[np.isfinite(cuts)])
    index = np.searchsorted(edges, present, side="left")
    counts = np.bincount(index, minlength=edges.size + 1)
    return NumericProfile(tuple(float(e) for e in edges), tuple(int(c) for c in counts), missing)


def categorical_profile(
    values: Iterable[object], kept: int = MAX_KEPT_CATEGORIES
) -> CategoricalProfile:
    """The ``kept`` most frequent categories by name; the rest are counted as ``other``."""
    counted = Counter(category(v) for v in values)
    missing = counted.pop(None, 0)
    ranked = sorted(counted.items(), key=lambda item: (-item[1], item[0]))
    counts = {str(k): n for k, n in ranked[:kept]}
    other = sum(n for _, n in ranked[kept:])
    if not counts:
        counts = {"": 0}  # nothing but missing values: one empty category keeps the format
    return CategoricalProfile(counts, other, missing)


def profile(values: Sequence[Any], bins: int = BINS) -> Profile:
    kind = getattr(getattr(values, "dtype", None), "kind", None)  # a numpy array's
    if kind in ("f", "i", "u") or (kind is None and is_numeric_column(values)):
        return numeric_profile(values, bins)
    return categorical_profile(values)


def build_reference(
    columns: Mapping[str, Sequence[Any]],
    prediction: Sequence[Any] | None = None,
    *,
    bins: int = BINS,
    meta: Mapping[str, str] | None = None,
) -> Reference:
    """A profile per column (all of one length: the sample's rows)."""
    lengths = {len(v) for v in columns.values()} | (
        {len(prediction)} if prediction is not None else set()
    )
    if len(lengths) != 1:
        raise ReferenceError([f"every column must have the same length, got {sorted(lengths)}"])
    features = {name: profile(values, bins) for name, values in columns.items()}
    predicted = profile(prediction, bins) if prediction is not None else None
    return Reference(lengths.pop(), features, predicted, dict(meta or {}))


def reference_from_sample(raw: bytes, *, bins: int = BINS) -> Reference:
    """A reference sample file instead of reference.json: JSON Lines, one record per row shaped
    like a prediction log record (``{"features": {...}, "prediction": ...}``)."""
    records: list[tuple[dict[str, Any], Any]] = []
    issues: list[str] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        record = _sample_record(number, line, issues)
        if record is not None:
            records.append(record)
    if issues:
        raise ReferenceError(issues)
    if not records:
        raise ReferenceError(["the reference sample holds no records (JSON Lines expected)"])
    names = sorted({name for features, _ in records for name in features})
    columns = {name: [features.get(name) for features, _ in records] for name in names}
    predictions = [p for _, p in records]
    has_prediction = any(p is not None for p in predictions)
    return build_reference(columns, predictions if has_prediction else None, bins=bins)


def _sample_record(
    number: int, line: bytes, issues: list[str]
) -> tuple[dict[str, Any], Any] | None:
    if len(issues) >= MAX_SAMPLE_ISSUES:
        return None
    try:
        record = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        issues.append(f"sample line {number}: not valid JSON")
        return None
    features = record.get("features") if isinstance(record, dict) else None
    if not isinstance(features, dict):
        issues.append(f'sample line {number}: must be an object with "features": {{...}}')
        return None
    return features, record.get("prediction")
