"""The reference profile a training job writes beside metrics.json (``reference.json``), and its
validating parser. Pure: no numpy, no I/O. The format is documented in docs/monitoring.md."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

FORMAT = "mlops-bot/reference@1"
MAX_FEATURES = 1000
MAX_EDGES = 1000
MAX_CATEGORIES = 10_000
MAX_ISSUES = 10
PREDICTION = "prediction"  # the name the prediction's profile goes by in reports


class ReferenceError(ValueError):
    """The reference profile is malformed; ``issues`` holds one line per problem."""

    def __init__(self, issues: list[str]) -> None:
        shown = issues[:MAX_ISSUES]
        more = len(issues) - len(shown)
        lines = shown + ([f"... and {more} more"] if more else [])
        super().__init__("the reference profile is not valid:\n" + "\n".join(lines))
        self.issues = issues


@dataclass(frozen=True)
class NumericProfile:
    """Quantile bins: ``edges`` are the k-1 inner cut points of k bins; bin i holds the values
    x with edges[i-1] < x <= edges[i] (the first and last bins are open-ended)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    missing: int = 0
    kind: Literal["numeric"] = "numeric"

    @property
    def total(self) -> int:
        return sum(self.counts) + self.missing

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "edges": list(self.edges),
            "counts": list(self.counts),
            "missing": self.missing,
        }


@dataclass(frozen=True)
class CategoricalProfile:
    """Counts per category; ``other`` counts categories left out of ``counts`` (rare ones)."""

    counts: dict[str, int]
    other: int = 0
    missing: int = 0
    kind: Literal["categorical"] = "categorical"

    @property
    def total(self) -> int:
        return sum(self.counts.values()) + self.other + self.missing

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "counts": dict(self.counts),
            "other": self.other,
            "missing": self.missing,
        }


Profile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class Reference:
    rows: int
    features: dict[str, Profile]
    prediction: Profile | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def profiles(self) -> dict[str, Profile]:
        """Every profile to check, the prediction's under the name ``prediction``."""
        both = dict(self.features)
        if self.prediction is not None:
            both[PREDICTION] = self.prediction
        return both

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": FORMAT,
            "rows": self.rows,
            "features": {name: p.to_json() for name, p in self.features.items()},
        }
        if self.prediction is not None:
            data["prediction"] = self.prediction.to_json()
        if self.meta:
            data["meta"] = dict(self.meta)
        return data

    def dumps(self) -> bytes:
        return json.dumps(self.to_json(), indent=1, sort_keys=False).encode()


def category(value: object) -> str | None:
    """The key a categorical value is counted under (None for a missing value)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Issues:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, problem: str) -> None:
        self.lines.append(f"{where}: {problem}")


def is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_reference(raw: bytes) -> Reference:
    """Read and check ``reference.json``; every problem is reported with where it is."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReferenceError([f"reference.json is not valid JSON ({exc})"]) from None
    if not isinstance(data, dict):
        raise ReferenceError(["reference.json must hold a JSON object with format, rows, features"])
    issues = _Issues()
    reference = _reference(data, issues)
    if issues.lines or reference is None:
        raise ReferenceError(issues.lines)
    return reference


def _reference(data: dict[str, Any], issues: _Issues) -> Reference | None:
    if data.get("format") != FORMAT:
        issues.add("format", f"must be {FORMAT!r}, not {data.get('format')!r}")
    unknown = sorted(set(data) - {"format", "rows", "features", "prediction", "meta"})
    if unknown:
        issues.add(
            "top level", f"unknown keys {unknown} (known: format, rows, features, prediction, meta)"
        )
    rows = data.get("rows")
    if not is_count(rows) or rows == 0:
        issues.add(
            "rows", f"must be a positive whole number (the training sample's size), not {rows!r}"
        )
        rows = None
    features = _features(data.get("features"), rows, issues)
    prediction = None
    if "prediction" in data:
        prediction = _profile("prediction", data["prediction"], rows, issues)
    meta = _meta(data.get("meta", {}), issues)
    if rows is None or features is None:
        return None
    return Reference(rows=rows, features=features, prediction=prediction, meta=meta)


def _features(value: object, rows: int | None, issues: _Issues) -> dict[str, Profile] | None:
    if not isinstance(value, dict) or not value:
        issues.add("features", "must be an object with one profile per feature name")
        return None
    if len(value) > MAX_FEATURES:
        issues.add("features", f"has {len(value)} features, at most {MAX_FEATURES} are allowed")
        return None
    profiles: dict[str, Profile] = {}
    for name, raw in value.items():
        if not name or name == PREDICTION:
            issues.add(
                f"features.{name!r}", f"a feature name must be non-empty and not {PREDICTION!r}"
            )
            continue
        profile = _profile(f"features.{name}", raw, rows, issues)
        if profile is not None:
            profiles[name] = profile
    return profiles


def _profile(where: str, raw: object, rows: int | None, issues: _Issues) -> Profile | None:
    if not isinstance(raw, dict):
        issues.add(
            where, 'must be an object like {"type": "numeric", "edges": [...], "counts": [...]}'
        )
        return None
    kind = raw.get("type")
    if kind == "numeric":
        profile: Profile | None = _numeric(where, raw, issues)
    elif kind == "categorical":
        profile = _categorical(where, raw, issues)
    else:
        issues.add(f"{where}.type", f"must be 'numeric' or 'categorical', not {kind!r}")
        return None
    if profile is not None and rows is not None and profile.total != rows:
        issues.add(
            where,
            f"counts and missing add up to {profile.total}, but rows is {rows} "
            "(every row counts once per feature: in a bin, a category, other or missing)",
        )
    return profile


def _missing(where: str, raw: dict[str, Any], key: str, issues: _Issues) -> int:
    value = raw.get(key, 0)
    if not is_count(value):
        issues.add(f"{where}.{key}", f"must be a whole number >= 0, not {value!r}")
        return 0
    return int(value)


def _numeric(where: str, raw: dict[str, Any], issues: _Issues) -> NumericProfile | None:
    unknown = sorted(set(raw) - {"type", "edges", "counts", "missing"})
    if unknown:
        issues.add(
            where, f"unknown keys {unknown} for a numeric profile (type, edges, counts, missing)"
        )
    edges, counts = raw.get("edges"), raw.get("counts")
    if not isinstance(edges, list) or len(edges) > MAX_EDGES:
        issues.add(f"{where}.edges", f"must be a list of at most {MAX_EDGES} numbers")
        return None
    if not isinstance(counts, list) or len(counts) != len(edges) + 1:
        issues.add(
            f"{where}.counts",
            f"must be a list of len(edges) + 1 = {len(edges) + 1} counts (one per bin)",
        )
        return None
    bad = next((i for i, e in enumerate(edges) if not is_number(e)), None)
    if bad is not None:
        issues.add(f"{where}.edges[{bad}]", f"must be a finite number, not {edges[bad]!r}")
        return None
    down = next((i for i in range(1, len(edges)) if edges[i] <= edges[i - 1]), None)
    if down is not None:
        issues.add(
            f"{where}.edges[{down}]",
            f"edges must increase strictly: {edges[down]!r} follows {edges[down - 1]!r}",
        )
        return None
    wrong = next((i for i, c in enumerate(counts) if not is_count(c)), None)
    if wrong is not None:
        issues.add(
            f"{where}.counts[{wrong}]", f"must be a whole number >= 0, not {counts[wrong]!r}"
        )
        return None
    missing = _missing(where, raw, "missing", issues)
    return NumericProfile(tuple(float(e) for e in edges), tuple(counts), missing)


def _categorical(where: str, raw: dict[str, Any], issues: _Issues) -> CategoricalProfile | None:
    unknown = sorted(set(raw) - {"type", "counts", "other", "missing"})
    if unknown:
        issues.add(
            where,
            f"unknown keys {unknown} for a categorical profile (type, counts, other, missing)",
        )
    counts = raw.get("counts")
    if not isinstance(counts, dict) or not counts or len(counts) > MAX_CATEGORIES:
        issues.add(
            f"{where}.counts",
            f"must be an object of category -> count with 1 to {MAX_CATEGORIES} categories",
        )
        return None
    wrong = next((k for k, c in counts.items() if not is_count(c)), None)
    if wrong is not None:
        issues.add(f"{where}.counts.{wrong}", f"must be a whole number >= 0, not {counts[wrong]!r}")
        return None
    other = _missing(where, raw, "other", issues)
    missing = _missing(where, raw, "missing", issues)
    return CategoricalProfile(dict(counts), other, missing)


def _meta(value: object, issues: _Issues) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        issues.add("meta", "must be an object of strings (e.g. the dataset version)")
        return {}
    return dict(value)
