"""A training job's last step for a monitored model: evaluate on the fixed test set into
metrics.json, and profile the test inputs and the model's predictions into reference.json.

    python train.py out/      # writes out/metrics.json and out/reference.json

The model here is a stand-in (a threshold on a score); what matters is what is written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from reference import write_reference


def test_set(rows: int = 5000, seed: int = 7) -> dict[str, list[object]]:
    rng = np.random.default_rng(seed)
    return {
        "amount": list(np.round(rng.lognormal(3.0, 1.0, rows), 2)),
        "age_days": [int(v) for v in rng.integers(0, 3650, rows)],
        "country": list(rng.choice(["DE", "FR", "US", "GB"], rows, p=[0.4, 0.2, 0.3, 0.1])),
        "channel": list(rng.choice(["web", "app", "pos"], rows)),
    }


def main(out: Path) -> None:
    features = test_set()
    amounts = np.array(features["amount"])
    predicted = ["fraud" if a > 150 else "ok" for a in amounts]
    truth = ["fraud" if a > 140 else "ok" for a in amounts]
    accuracy = float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))
    out.mkdir(parents=True, exist_ok=True)
    metrics = {"metrics": {"accuracy": round(accuracy, 4)}, "test_set": "v3"}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    write_reference(
        str(out / "reference.json"),
        features=features,
        prediction=predicted,
        meta={"test_set": "v3"},
    )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "out"))
