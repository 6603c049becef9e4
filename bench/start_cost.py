"""Start time and idle memory of `mlops-bot serve`, against a bare aiohttp process.

    .venv/bin/python bench/start_cost.py [--repeat 3] [--rows 1000] [--settle 3]

Each target is started as its own process ``--repeat`` times; printed are the median time from
spawning it to its first ``/readyz`` 200 and its resident memory (VmRSS) after ``--settle``
seconds of idling, and the ratio of each against the bare process measured in the same run:

- bare: a Python process that imports aiohttp and answers ``/readyz`` (the floor any aiohttp
  bot pays);
- serve: the bot on the sandbox's sample configuration (two models, SQLite store, Slack
  credentials set, so no sandbox), on an empty store;
- serve, seeded: the same on a store holding ``--rows`` active runs and ``--rows`` deploys;
- sandbox: `mlops-bot sandbox` (the bot, the Slack and GitLab stand-ins and moto in one
  process) to its console banner, and its idle memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from bot.store import Store
from tests.seed import seed

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "bot" / "sandbox" / "sample-config.yaml"
BARE = """
import sys
from aiohttp import web
app = web.Application()
async def ready(request):
    return web.Response(text="ok")
app.router.add_get("/readyz", ready)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""
BANNER = "sandbox"


@dataclass(frozen=True)
class Figure:
    start_s: float
    rss_mb: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def measure_http(argv: list[str], port: int, env: dict[str, str], settle: float) -> Figure:
    with tempfile.TemporaryFile() as log:
        return watch_http(argv, port, env, settle, log)


def watch_http(
    argv: list[str], port: int, env: dict[str, str], settle: float, log: IO[bytes]
) -> Figure:
    started = time.perf_counter()
    # the bench's own fixed argument lists
    child = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)  # noqa: S603
    try:
        while not ready(port):
            if child.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{argv} exited: {log.read().decode()[-2000:]}")
            if time.perf_counter() - started > 60:
                raise RuntimeError(f"{argv} not ready in 60 s")
            time.sleep(0.01)
        took = time.perf_counter() - started
        time.sleep(settle)
        return Figure(took, rss_mb(child.pid))
    finally:
        child.terminate()
        child.wait(timeout=30)


def measure_sandbox(env: dict[str, str], settle: float, cwd: Path) -> Figure:
    """Time to the console's first prompt line; the console reads stdin, kept open."""
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "bot", "sandbox"],
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox printed nothing")
        took = time.perf_counter() - started
        time.sleep(settle)
        return Figure(took, rss_mb(child.pid))
    finally:
        child.terminate()
        child.wait(timeout=30)


async def seeded_store(url: str, rows: int) -> None:
    store = Store.from_url(url, timeout=30)
    await store.migrate()
    await seed(store, active=rows, deploys=rows)
    await store.close()


def bench_config(tmp: Path) -> Path:
    """The sample config, with the ecspresso stand-in (serve refuses a missing ecspresso)."""
    data = yaml.safe_load(SAMPLE.read_text())
    data.setdefault("ecspresso", {})["path"] = str(ROOT / "bot" / "sandbox" / "bin" / "ecspresso")
    path = tmp / "bench-config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def serve_env(tmp: Path, port: int, store: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MLOPS_BOT_"))}
    return env | {
        "PYTHONPATH": str(ROOT),
        "MLOPS_BOT_CONFIG": str(bench_config(tmp)),
        "MLOPS_BOT_STORE_URL": store,
        "MLOPS_BOT_PORT": str(port),
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": "bench-signing-secret",
        "HOME": str(tmp),
    }


def median(figures: list[Figure]) -> Figure:
    return Figure(
        statistics.median(f.start_s for f in figures), statistics.median(f.rss_mb for f in figures)
    )


def run(repeat: int, rows: int, settle: float) -> dict[str, Figure]:
    found: dict[str, list[Figure]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        empty = f"sqlite:///{tmp / 'empty.db'}"
        full = f"sqlite:///{tmp / 'seeded.db'}"
        asyncio.run(seeded_store(full, rows))
        migrate = [sys.executable, "-m", "bot", "migrate"]
        subprocess.run(migrate, env=serve_env(tmp, 0, empty), cwd=ROOT, check=True)  # noqa: S603
        serve = [sys.executable, "-m", "bot", "serve"]
        for _ in range(repeat):
            port = free_port()
            bare = [sys.executable, "-c", BARE, str(port)]
            found.setdefault("bare aiohttp", []).append(
                measure_http(bare, port, dict(os.environ), settle)
            )
            port = free_port()
            found.setdefault("serve", []).append(
                measure_http(serve, port, serve_env(tmp, port, empty), settle)
            )
            port = free_port()
            found.setdefault(f"serve, {rows} runs+deploys", []).append(
                measure_http(serve, port, serve_env(tmp, port, full), settle)
            )
            found.setdefault("sandbox (to banner)", []).append(
                measure_sandbox(serve_env(tmp, 0, empty), settle, tmp)
            )
    return {name: median(figures) for name, figures in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args()
    figures = run(args.repeat, args.rows, args.settle)
    base = figures["bare aiohttp"]
    print(f"start to ready and idle RSS, median of {args.repeat}")
    for name, figure in figures.items():
        print(
            f"{name:<32} start={figure.start_s:6.2f} s ({figure.start_s / base.start_s:5.1f}x bare)"
            f"  rss={figure.rss_mb:6.1f} MB ({figure.rss_mb / base.rss_mb:4.1f}x bare)"
        )


if __name__ == "__main__":
    main()
