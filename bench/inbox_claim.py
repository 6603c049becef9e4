"""The CPU a claim of the interaction inbox costs, with 100 / 1,000 / 10,000 rows pending.

    .venv/bin/python bench/inbox_claim.py [--sizes 100,1000,10000] [--claims 200]

After a burst of slash commands the processor claims them one by one while the backlog is
thousands deep; the edge, answering Slack at the same time, shares the loop with every
claim. For each size a fresh SQLite store gets that many pending rows, stored by the inbox
that then claims them (as after a burst: it holds the first refusal of each for two seconds
after its store), and ``--claims`` times it claims one row and marks it processed, as the
processor does. Printed:
the CPU time (this process, every thread) and wall time per claim, and each size's CPU over
the smallest size's, measured in the same run. A claim costs the same whatever the backlog
when the ratio stays near 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.store import Store
from bot.store.inbox import Delivery

BODY = json.dumps({"command": "/train", "text": "list fraud", "trigger_id": "bench"})
STORE_BATCH = 100


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


async def per_claim(size: int, claims: int) -> tuple[float, float]:
    """CPU and wall seconds of one claim with its mark, with ``size`` rows pending."""
    with tempfile.TemporaryDirectory(prefix="inbox-claim-") as tmp:
        store = Store.from_url(f"sqlite:///{Path(tmp) / 'bot.db'}")
        try:
            await store.migrate()
            inbox = store.interactions
            for start in range(0, size + claims, STORE_BATCH):
                keys = range(start, min(start + STORE_BATCH, size + claims))
                await inbox.put_many([Delivery(f"bench:{k}", "command", None, BODY) for k in keys])
            cpu, wall = cpu_seconds(), time.perf_counter()
            for _ in range(claims):
                items = await inbox.claim(1, lease=60)
                await inbox.mark_processed([item.id for item in items])
            return (cpu_seconds() - cpu) / claims, (time.perf_counter() - wall) / claims
        finally:
            await store.close()


async def main(sizes: list[int], claims: int) -> None:
    await per_claim(sizes[0], claims)  # warm: modules loaded, statements compiled once
    baseline = None
    for size in sizes:
        cpu, wall = await per_claim(size, claims)
        baseline = baseline or cpu
        print(
            f"{size:>7} pending  claim + mark: CPU {cpu * 1e3:6.2f} ms  wall {wall * 1e3:6.2f} ms"
            f"  CPU vs {sizes[0]} pending: {cpu / baseline:5.2f}"
        )


def parse_sizes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        expected = "expected sizes separated by commas, e.g. 100,1000,10000"
        raise argparse.ArgumentTypeError(f"--sizes {text!r}: {expected}") from None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=parse_sizes, default=[100, 1000, 10000])
    parser.add_argument("--claims", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.claims))
