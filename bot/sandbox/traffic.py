"""The sandbox's traffic generator: prediction logs and delayed labels for the sample models,
written into moto's S3 as a model service and its labelling would (JSON Lines, gzip, hour
partitions; docs/monitoring.md), and ALB latency put into CloudWatch. Console lines steer it:

    traffic fraud prod drift amount +0.5sd   shift a numeric feature's mean by 0.5 standard
                                             deviations (a categorical one: +0.5 moves half of
                                             the rows to its rarest category)
    traffic fraud prod accuracy -0.1         labels agree with predictions 10 points less often
    traffic fraud prod slow 300ms            the target group's latency at 300 ms
    traffic fraud prod normal                back to the training distribution

Each line writes a fresh batch (``ROWS`` predictions over the last ``MINUTES`` minutes); with
``replace`` (the sandbox console's) it also removes the previous batch of that model
environment, so the next check sees only the newest traffic (the sandbox compresses time: a
line stands for the next window). The training distribution is the one the sandbox's
training job profiles into reference.json (bot/sandbox/fixtures/samples.py)."""

from __future__ import annotations

import gzip
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config.ab import tg_dimension
from bot.config.settings import Settings
from bot.domain.monitoring.records import S3Prefix
from bot.sandbox.fixtures.samples import SAMPLE_MODELS, Conditions, ModelTraffic, sample

BUCKET = "mlops-sandbox-monitoring"
ROWS = 2000
MINUTES = 15
LABEL_DELAY = timedelta(minutes=5)
ALB_NAMESPACE = "AWS/ApplicationELB"
SHIFT = re.compile(r"([+-]?\d+(?:\.\d+)?)sd")
LATENCY = re.compile(r"(\d+(?:\.\d+)?)(ms|s)")
USAGE = "traffic <model> <env> drift <feature> +0.5sd | accuracy -0.1 | slow 300ms | normal"


@dataclass(frozen=True)
class Written:
    predictions: int
    labels: int
    objects: list[str]


class Traffic:
    """Writes traffic for the sample models and steers it; one instance per sandbox."""

    def __init__(
        self,
        settings: Settings,
        aws: Any,
        *,
        seed: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        replace: bool = False,
    ) -> None:
        import numpy as np

        self.settings = settings
        self.s3 = aws.client("s3")
        self.cloudwatch = aws.client("cloudwatch")
        self.conditions: dict[tuple[str, str], Conditions] = {}
        self._rng = np.random.default_rng(seed)
        self._clock = clock
        self._ids = itertools.count(1)
        self._buckets: set[str] = set()
        self._replace = replace
        self._written: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (bucket, key)

    # -- the console line ------------------------------------------------------------------

    def __call__(self, rest: str) -> str:
        words = rest.split()
        if len(words) < 3:
            raise ValueError(f"usage: {USAGE}")
        model, env, action, args = words[0], words[1], words[2], words[3:]
        spec = self._spec(model, env)
        conditions = self.conditions.setdefault((model, env), Conditions())
        said = self._steer((model, env), spec, conditions, action, args)
        if action == "slow":
            return f"(traffic {model}/{env}: {said})"
        written = self.write(model, env)
        return (
            f"(traffic {model}/{env}: {said}; wrote {written.predictions:,} predictions and "
            f"{written.labels:,} labels in {len(written.objects)} objects)"
        )

    def _spec(self, model: str, env: str) -> ModelTraffic:
        if model not in SAMPLE_MODELS:
            raise ValueError(f"no traffic for model {model!r}; models: {', '.join(SAMPLE_MODELS)}")
        envs = self.settings.models[model].environments if model in self.settings.models else {}
        if env not in envs:
            raise ValueError(f"{model} has no environment {env!r}; environments: {', '.join(envs)}")
        return SAMPLE_MODELS[model]

    def _steer(
        self,
        model_env: tuple[str, str],
        spec: ModelTraffic,
        conditions: Conditions,
        action: str,
        args: list[str],
    ) -> str:
        if action == "drift" and len(args) == 2:
            feature = spec.feature(args[0]).name
            conditions.shifts[feature] = _shift(args[1])
            return f"{feature} shifted {conditions.shifts[feature]:+g} sd"
        if action == "accuracy" and len(args) == 1:
            conditions.accuracy_delta = _number(args[0], "accuracy takes a change like -0.1")
            return f"accuracy {spec.accuracy + conditions.accuracy_delta:.2f}"
        if action == "slow" and len(args) == 1:
            conditions.latency_ms = _latency(args[0])
            return self.put_latency(model_env, conditions.latency_ms)
        if action == "normal" and not args:
            conditions.shifts.clear()
            conditions.accuracy_delta, conditions.latency_ms = 0.0, None
            return "back to normal; " + self.put_latency(model_env, spec.latency_ms)
        raise ValueError(f"usage: {USAGE}")

    # -- S3 --------------------------------------------------------------------------------

    def where(self, model: str, env: str) -> tuple[S3Prefix, S3Prefix]:
        """The prefixes the model's monitoring config names, or the sandbox's defaults."""
        monitoring = self.settings.models[model].monitoring
        watched = monitoring.environments.get(env) if monitoring else None
        default = f"s3://{BUCKET}/{model}/{env}/"
        predictions = (watched.predictions if watched else None) or default + "predictions/"
        labels = (watched.labels if watched else None) or default + "labels/"
        return S3Prefix.parse(predictions), S3Prefix.parse(labels)

    def write(self, model: str, env: str, rows: int = ROWS) -> Written:
        """``rows`` predictions over the last ``MINUTES`` minutes, and their labels."""
        spec = SAMPLE_MODELS[model]
        conditions = self.conditions.setdefault((model, env), Conditions())
        columns, predictions, labels = sample(spec, conditions, rows, self._rng)
        end = self._clock()
        offsets = sorted(self._rng.uniform(0, MINUTES * 60, rows), reverse=True)
        times = [end - timedelta(seconds=float(s)) for s in offsets]
        ids = [f"{model}-{env}-{next(self._ids)}" for _ in range(rows)]
        names = list(columns)
        records = [
            {
                "time": _iso(at),
                "id": record_id,
                "features": {name: columns[name][i] for name in names},
                "prediction": predictions[i],
            }
            for i, (at, record_id) in enumerate(zip(times, ids, strict=True))
        ]
        label_times = [min(at + LABEL_DELAY, end) for at in times]
        label_records = [
            {"time": _iso(at), "id": record_id, "label": label}
            for at, record_id, label in zip(label_times, ids, labels, strict=True)
        ]
        where_predictions, where_labels = self.where(model, env)
        predicted = self._put(where_predictions, times, records, end)
        labelled = self._put(where_labels, label_times, label_records, end)
        batch = [(where_predictions.bucket, k) for k in predicted]
        batch += [(where_labels.bucket, k) for k in labelled]
        if self._replace:
            for bucket, key in self._written.get((model, env), []):
                self.s3.delete_object(Bucket=bucket, Key=key)
        self._written[(model, env)] = batch
        return Written(rows, rows, predicted + labelled)

    def _put(
        self, where: S3Prefix, times: list[datetime], records: list[dict[str, Any]], end: datetime
    ) -> list[str]:
        """One gzip object per hour partition the records fall in."""
        self._bucket(where.bucket)
        hours: dict[str, list[bytes]] = {}
        for at, record in zip(times, records, strict=True):
            line = json.dumps(record, separators=(",", ":")).encode()
            hours.setdefault(f"{where.prefix}{at:%Y/%m/%d/%H}/", []).append(line)
        keys = []
        for prefix, lines in sorted(hours.items()):
            key = f"{prefix}traffic-{end:%Y%m%dT%H%M%S%f}.jsonl.gz"
            body = gzip.compress(b"\n".join(lines) + b"\n")
            self.s3.put_object(Bucket=where.bucket, Key=key, Body=body)
            keys.append(key)
        return keys

    def _bucket(self, bucket: str) -> None:
        if bucket in self._buckets:
            return
        existing = {b["Name"] for b in self.s3.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            self.s3.create_bucket(Bucket=bucket)
        self._buckets.add(bucket)

    # -- CloudWatch ------------------------------------------------------------------------

    def put_latency(self, model_env: tuple[str, str], ms: float) -> str:
        """Latency samples for the target group the A/B guard and the SLO check read."""
        found = self._target(model_env)
        if found is None:
            return f"latency {ms:g} ms (no target group in the settings: nothing put)"
        load_balancer, target_group = found
        dims = [
            {"Name": "LoadBalancer", "Value": load_balancer},
            {"Name": "TargetGroup", "Value": target_group},
        ]
        now = self._clock()
        values = [round(ms / 1000 * factor, 4) for factor in (0.6, 0.8, 1.0, 1.0, 1.0, 1.2)]
        self.cloudwatch.put_metric_data(
            Namespace=ALB_NAMESPACE,
            MetricData=[
                {"MetricName": "TargetResponseTime", "Dimensions": dims, "Timestamp": now,
                 "Values": values, "Counts": [40.0] * len(values), "Unit": "Seconds"},
                {"MetricName": "RequestCount", "Dimensions": dims, "Timestamp": now,
                 "Value": 240.0, "Unit": "Count"},
                {"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dims,
                 "Timestamp": now, "Value": 0.0, "Unit": "Count"},
            ],
        )  # fmt: skip
        return f"latency {ms:g} ms put for {target_group}"

    def _target(self, model_env: tuple[str, str]) -> tuple[str, str] | None:
        """(LoadBalancer, TargetGroup) dimensions: the monitoring section's, else A's of the
        environment's A/B split."""
        model, env = model_env
        config = self.settings.models[model]
        watched = config.monitoring.environments.get(env) if config.monitoring else None
        if watched is not None and watched.cloudwatch is not None:
            slos = watched.cloudwatch
            return slos.load_balancer, tg_dimension(slos.target_group)
        ab = config.environments[env].ab
        if ab is not None:
            return ab.lb_dimension, tg_dimension(ab.target_group_a)
        return None


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(raw: str, usage: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{raw!r}: {usage}") from None


def _shift(raw: str) -> float:
    match = SHIFT.fullmatch(raw)
    if match is None:
        raise ValueError(f"{raw!r}: write a shift in standard deviations, like +0.5sd or -1sd")
    return float(match[1])


def _latency(raw: str) -> float:
    match = LATENCY.fullmatch(raw)
    if match is None:
        raise ValueError(f"{raw!r}: write a latency like 300ms or 1.5s")
    return float(match[1]) * (1000.0 if match[2] == "s" else 1.0)
