"""Random requests against the running sandbox's two public endpoints; prints status counts.

    python bench/fuzz_endpoints.py [--requests 10000] [--seed 7] [--concurrency 20]

Methods, content types, timestamps, signatures (valid or not), tokens and bodies (random
bytes, random JSON, form bodies with and without ``payload``) are drawn from a seeded
generator; the goal is 0 responses of 5xx per endpoint. It exits on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import hmac
import json
import random
import time
import urllib.parse
from typing import Any

import aiohttp

from bot.logs import configure_logging
from bot.sandbox.people import SIGNING_SECRET, WEBHOOK_SECRET
from bot.sandbox.runner import running_sandbox

KEYS = ["type", "event", "payload", "actions", "command", "item", "user", "object_kind", "id"]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.random()
    if depth > 3 or pick < 0.3:
        return rng.choice([None, True, 0, -1, 2**70, "", "x" * rng.randint(0, 30), 1.5])
    if pick < 0.6:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def random_body(rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.randbytes(rng.randint(0, 300))
    if kind == 1:
        return json.dumps(random_json(rng)).encode()
    if kind == 2:
        return urllib.parse.urlencode({"payload": json.dumps(random_json(rng))}).encode()
    if kind == 3:
        fields = {"command": rng.choice(["/deploy", "/train", "/x", ""]), "text": "help"}
        fields |= {rng.choice(KEYS): str(random_json(rng)) for _ in range(rng.randint(0, 3))}
        return urllib.parse.urlencode(fields).encode()
    return b"[" * rng.randint(1, 50_000)


def slack_headers(rng: random.Random, body: bytes) -> dict[str, str]:
    headers = {
        "Content-Type": rng.choice(
            ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]
        )
    }
    stamp = rng.choice([str(int(time.time())), "abc", "1e10", "", "-5", str(2**40)])
    headers["X-Slack-Request-Timestamp"] = stamp
    if rng.random() < 0.6:
        base = b"v0:" + stamp.encode() + b":" + body
        headers["X-Slack-Signature"] = (
            "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
        )
    return {k: v for k, v in headers.items() if v}


def gitlab_headers(rng: random.Random) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    token = rng.choice([WEBHOOK_SECRET, WEBHOOK_SECRET, "wrong", None])
    if token:
        headers["X-Gitlab-Token"] = token
    if rng.random() < 0.5:
        headers["X-Gitlab-Event"] = rng.choice(["Pipeline Hook", "Job Hook", "Push Hook", "Nope"])
    if rng.random() < 0.5:
        headers["Idempotency-Key"] = str(rng.getrandbits(64))
    return headers


async def fuzz(
    url: str, path: str, count: int, seed: int, concurrency: int
) -> collections.Counter[int]:
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        body = random_body(rng)
        headers = slack_headers(rng, body) if path == "/slack/events" else gitlab_headers(rng)
        requests.append((rng.choice(["POST"] * 8 + ["GET", "PUT"]), body, headers))
    statuses: collections.Counter[int] = collections.Counter()
    gate = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def one(method: str, body: bytes, headers: dict[str, str]) -> None:
            async with gate, http.request(method, url + path, data=body, headers=headers) as r:
                await r.read()
                statuses[r.status] += 1

        await asyncio.gather(*(one(*request) for request in requests))
    return statuses


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    configure_logging("error", json=False)
    async with running_sandbox() as sandbox:
        worst = 0
        for path in ("/slack/events", "/gitlab/webhook"):
            started = time.perf_counter()
            statuses = await fuzz(sandbox.url, path, args.requests, args.seed, args.concurrency)
            took = time.perf_counter() - started
            errors = sum(n for status, n in statuses.items() if status >= 500)
            worst = max(worst, errors)
            counts = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
            print(f"{path}: {args.requests} requests in {took:.1f}s -> {counts}; 5xx: {errors}")
    return 1 if worst else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
