"""Write reference.json beside metrics.json at the end of training: copy this file into the
model's project (it needs numpy only). The format is documented in the bot's docs/monitoring.md.

    from reference import write_reference
    write_reference("out/reference.json", features={"amount": x[:, 0], ...}, prediction=y_pred)

Profile the data the model was evaluated on as it will arrive in production (the test set, or
a sample of training inputs); ``prediction`` is what the model predicted for those rows.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

FORMAT = "mlops-bot/reference@1"
BINS = 10  # deciles
KEPT_CATEGORIES = 200  # the rest are counted as "other"


def category(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def is_numeric(values: Sequence[Any]) -> bool:
    return all(
        v is None
        or (
            isinstance(v, int | float | np.integer | np.floating)
            and not isinstance(v, bool | np.bool_)
        )
        for v in values
    )


def numeric(values: Sequence[Any], bins: int = BINS) -> dict[str, Any]:
    """Quantile edges (ties merged) and counts with bin i = (edges[i-1], edges[i]]."""
    array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    present = array[~np.isnan(array)]
    if present.size == 0:
        return {"type": "numeric", "edges": [], "counts": [0], "missing": int(array.size)}
    cuts = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = np.unique(cuts[np.isfinite(cuts)])
    counts = np.bincount(np.searchsorted(edges, present, side="left"), minlength=edges.size + 1)
    return {
        "type": "numeric",
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "missing": int(array.size - present.size),
    }


def categorical(values: Sequence[Any]) -> dict[str, Any]:
    counted = Counter(category(v) for v in values)
    missing = counted.pop(None, 0)
    ranked = sorted(counted.items(), key=lambda item: (-item[1], item[0]))
    counts = {k: n for k, n in ranked[:KEPT_CATEGORIES]} or {"": 0}
    other = sum(n for _, n in ranked[KEPT_CATEGORIES:])
    return {"type": "categorical", "counts": counts, "other": other, "missing": missing}


def profile(values: Sequence[Any]) -> dict[str, Any]:
    values = list(values)
    return numeric(values) if is_numeric(values) else categorical(values)


def reference(
    features: Mapping[str, Sequence[Any]],
    prediction: Sequence[Any] | None = None,
    meta: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    rows = {len(v) for v in features.values()}
    if len(rows) != 1:
        raise ValueError(f"every feature needs one value per row, got lengths {sorted(rows)}")
    data: dict[str, Any] = {
        "format": FORMAT,
        "rows": rows.pop(),
        "features": {name: profile(values) for name, values in features.items()},
    }
    if prediction is not None:
        data["prediction"] = profile(prediction)
    if meta:
        data["meta"] = dict(meta)
    return data


def write_reference(path: str, **kwargs: Any) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(reference(**kwargs), out, indent=1)
