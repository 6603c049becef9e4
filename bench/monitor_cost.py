"""What one monitoring check costs: a window of prediction logs read from S3, folded into the
reference's bins, labels joined, drift judged. Wall time and peak RSS of the process doing it.

    .venv/bin/python bench/monitor_cost.py [--predictions 1000000] [--labels 300000]
        [--per-object 50000] [--max-labels 200000] [--digits 4] [--seed 1]

A moto server runs as its own process (its memory holds the objects, not ours). The bench
writes ``--predictions`` records (20 features: 18 numbers with ``--digits`` decimals, 2
categories; a prediction; an id) as gzip JSON Lines into one hour partition, and labels for the
first ``--labels`` ids. Then a fresh child process (``--measure``) imports the bot's modules,
records its RSS, runs PredictionLogs.scan + drift() once and reports the wall time and the
peak RSS. PredictionLogs folds the objects in ``--workers`` lanes (default: its own, up to 2):
a thread of the child and ``--workers`` - 1 worker processes; the peak RSS reported is the
sum over every process of the check: the child's VmHWM plus each of its children's (the
workers and multiprocessing's resource tracker, polled every 20 ms). Goals: under 10 s and
under 300 MB for 1,000,000 predictions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3
import numpy as np
from botocore.config import Config

from bot.domain.monitoring.profiles import build_reference

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "bench-logs"
PREDICTIONS = "fraud/prod/predictions/"
LABELS = "fraud/prod/labels/"
START = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
NUMBERS, CATEGORIES = 18, ("country", "channel")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3}),
    )


def columns(rng: np.random.Generator, rows: int, digits: int) -> dict[str, Any]:
    data: dict[str, Any] = {
        f"f{i:02}": np.round(rng.normal(i, 1 + i / 10, rows), digits) for i in range(NUMBERS)
    }
    data["country"] = rng.choice(np.array(["DE", "FR", "US", "GB", "NL"]), rows)
    data["channel"] = rng.choice(np.array(["web", "app", "pos"]), rows)
    return data


def prediction(data: dict[str, Any]) -> Any:
    return np.where(data["f01"] > 2.5, "fraud", "ok")


def write_objects(s3: Any, args: argparse.Namespace, rng: np.random.Generator) -> None:
    written = 0
    while written < args.predictions:
        rows = min(args.per_object, args.predictions - written)
        data = columns(rng, rows, args.digits)
        predicted = prediction(data)
        seconds = np.sort(rng.uniform(0, 3599, rows))
        names = list(data)
        values = [data[n].tolist() for n in names]
        lines = []
        for i in range(rows):
            when = START + timedelta(seconds=float(seconds[i]))
            record = {
                "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "id": f"req-{written + i}",
                "features": {n: v[i] for n, v in zip(names, values, strict=True)},
                "prediction": str(predicted[i]),
            }
            lines.append(json.dumps(record, separators=(",", ":")))
        body = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6)
        key = f"{PREDICTIONS}2025/06/01/10/part-{written // args.per_object:05}.jsonl.gz"
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        written += rows
    labels = [
        json.dumps({"time": "2025-06-02T09:00:00Z", "id": f"req-{i}", "label": "ok"})
        for i in range(args.labels)
    ]
    if labels:
        body = gzip.compress(("\n".join(labels) + "\n").encode())
        s3.put_object(Bucket=BUCKET, Key=f"{LABELS}2025/06/02/09/labels.jsonl.gz", Body=body)


def peak_mb() -> float:
    """VmHWM, the process's peak RSS (ru_maxrss would carry the parent's over the exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class ChildPeaks:
    """Polls the VmHWM of this process's children (the worker processes, multiprocessing's
    resource tracker) every 20 ms while the check runs; the peak of each, by pid. (A child's
    ru_maxrss would count the parent's pages it had between fork and exec.)"""

    def __init__(self) -> None:
        self.peaks: dict[str, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.done.wait(0.02):
            for task in Path("/proc/self/task").iterdir():
                for pid in (task / "children").read_text().split():
                    mb = self._hwm(pid)
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), mb)

    @staticmethod
    def _hwm(pid: str) -> float:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            return 0.0
        return sum(int(x.split()[1]) / 1024 for x in lines if x.startswith("VmHWM:"))

    def __enter__(self) -> ChildPeaks:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        self.thread.join()


def measure(args: argparse.Namespace) -> None:
    """The child: one check, timed, with its own RSS."""
    import asyncio

    from bot.domain.monitoring.drift import drift
    from bot.domain.monitoring.records import S3Prefix, Window
    from bot.domain.monitoring.reference import parse_reference
    from integrations.aws.predictions import PredictionLogs

    reference = parse_reference(Path(args.reference).read_bytes())
    s3 = client(args.endpoint)
    s3.list_buckets()  # boto3's S3 model loaded before the baseline
    before = peak_mb()
    logs = PredictionLogs(s3, max_labels=args.max_labels, workers=args.workers)
    window = Window(START, START + timedelta(hours=1))
    labels = S3Prefix(BUCKET, LABELS) if args.labels else None
    label_window = Window(START, START + timedelta(days=2))
    started, cpu = time.perf_counter(), time.process_time() + children_cpu()
    with ChildPeaks() as children:
        scan = asyncio.run(
            logs.scan(reference, S3Prefix(BUCKET, PREDICTIONS), window, labels, label_window)
        )
        report = drift(scan.counts, 0.01)
    seconds = time.perf_counter() - started
    cpu = time.process_time() + children_cpu() - cpu  # the workers' too
    peak = peak_mb()
    worker_mb = max(children.peaks.values(), default=0.0)
    workers = len(children.peaks)
    total = peak + sum(children.peaks.values())
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "load": os.getloadavg()[0],
                "peak_mb": total,
                "parent_mb": peak,
                "worker_mb": worker_mb,
                "workers": workers,
                "baseline_mb": before,
                "records": scan.records,
                "objects": scan.objects,
                "labelled": scan.joined.labelled,
                "label_rate": scan.labels.rate if scan.labels else None,
                "drifted": [f.name for f in report.drifted],
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--labels", type=int, default=300_000)
    parser.add_argument("--per-object", type=int, default=50_000)
    parser.add_argument("--max-labels", type=int, default=200_000)
    parser.add_argument("--digits", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workers", type=int, help="lanes: this process + N-1 workers (default: PredictionLogs')"
    )
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        measure(args)
        return 0
    return run(args, argv or sys.argv[1:])


def run(args: argparse.Namespace, argv: list[str]) -> int:
    port = free_port()
    env = {**os.environ, **CREDENTIALS}
    server = subprocess.Popen(  # noqa: S603 - moto's own executable, fixed arguments
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        s3 = client(endpoint)
        for _ in range(100):
            try:
                s3.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                time.sleep(0.1)
        rng = np.random.default_rng(args.seed)
        sample = columns(rng, 50_000, args.digits)
        reference = build_reference(sample, prediction(sample))
        path = Path(tempfile.mkdtemp(prefix="monitor-cost-")) / "reference.json"
        path.write_bytes(reference.dumps())
        started = time.perf_counter()
        write_objects(s3, args, rng)
        print(
            f"wrote {args.predictions:,} predictions and {args.labels:,} labels "
            f"in {time.perf_counter() - started:.1f} s"
        )
        child = [
            sys.executable,
            __file__,
            *argv,
            "--measure",
            "--endpoint",
            endpoint,
            "--reference",
            str(path),
        ]
        out = subprocess.run(  # noqa: S603 - this script again, fixed arguments
            child, capture_output=True, text=True, check=True, env=env, cwd=ROOT
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        path.unlink()
        path.parent.rmdir()
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(
        f"one check of {result['records']:,} predictions in {result['objects']} objects, "
        f"{result['labelled']:,} joined labels (sample rate {result['label_rate']}): "
        f"{result['seconds']:.1f} s (goal < 10 s; CPU {result['cpu']:.1f} s, load average "
        f"{result['load']:.1f} on {os.cpu_count()} cores), peak RSS {result['peak_mb']:.0f} MB "
        f"summed over the processes (goal < 300 MB; this one {result['parent_mb']:.0f} MB, "
        f"{result['baseline_mb']:.0f} MB of it before the check; {result['workers']} child "
        f"processes, the largest {result['worker_mb']:.0f} MB); "
        f"drifted: {result['drifted'] or 'none'}"
    )
    return 0 if result["seconds"] < 10 and result["peak_mb"] < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
