"""A burst of GitLab webhook deliveries: the bot's /gitlab/webhook against a bare endpoint.

    .venv/bin/python bench/webhook_burst.py [--pipelines 100] [--duplicates 0.1] [--concurrency 20]

Each pipeline sends what GitLab sends for it (Pipeline Hook and Job Hook deliveries, 18 in all);
a share of them is delivered twice with the same Idempotency-Key, as GitLab's retries are.
The bot runs as `mlops-bot sandbox` runs it (SQLite store, Slack stand-in, every pipeline routed
to #ci), so its acknowledgement includes the durable insert, and the worker posts and edits the
cards while the burst is still arriving. The bare endpoint checks the token and parses the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from bot.logs import configure_logging
from bot.sandbox.gitlab.hooks import pipeline_hook, pipeline_story
from bot.sandbox.people import WEBHOOK_SECRET
from bot.sandbox.runner import Sandbox, running_sandbox
from bot.sandbox.webhook_replay import gitlab_headers

PROJECTS = ("ml/fraud", "ml/churn", "ml/ranking", "ml/forecast")


@dataclass(frozen=True)
class Request:
    pipeline: int
    key: str
    body: bytes


async def bare_endpoint(request: web.Request) -> web.Response:
    """What any GitLab receiver must do: check the token, read the JSON, answer."""
    token = request.headers.get("X-Gitlab-Token", "")
    if not hmac.compare_digest(token.encode(), WEBHOOK_SECRET.encode()):
        return web.Response(status=401)
    json.loads(await request.read())
    return web.Response(text="ok\n")


async def start_bare() -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/gitlab/webhook", bare_endpoint)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


def burst(pipelines: int, duplicates: float, seed: int = 7) -> list[Request]:
    """Every pipeline's deliveries in order, pipelines interleaved, with some retried."""
    rng = random.Random(seed)
    stories = [
        [
            Request(pid, f"burst-{pid}-{n}", event.payload())
            for n, event in enumerate(
                pipeline_story(PROJECTS[pid % len(PROJECTS)], pid, fail="unit" if pid % 5 else None)
            )
        ]
        for pid in range(1001, 1001 + pipelines)
    ]
    ordered: list[Request] = []
    while any(stories):
        for story in stories:
            if story:
                ordered.append(story.pop(0))
    for original in rng.sample(ordered, round(len(ordered) * duplicates / (1 - duplicates))):
        at = min(len(ordered), ordered.index(original) + rng.randint(1, 40))
        ordered.insert(at, original)
    return ordered


async def measure(
    session: aiohttp.ClientSession, url: str, requests: list[Request], concurrency: int
) -> tuple[list[float], float]:
    """Per-request acknowledgement latencies, and the whole burst's duration."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(request: Request) -> None:
        async with gate:
            headers = gitlab_headers(request.body, WEBHOOK_SECRET, idempotency_key=request.key)
            started = time.perf_counter()
            async with session.post(
                f"{url}/gitlab/webhook", data=request.body, headers=headers
            ) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    return latencies, time.perf_counter() - started


async def processing_lag(sandbox: Sandbox) -> float:
    """Seconds from now (the last ack) until every delivery is processed and its edit sent."""
    started = time.perf_counter()
    # the store is the truth about what is processed: poll it lightly
    while "pending" in await sandbox.bot.store.inbox.counts():  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await sandbox.bot.notifier.flush()
    return time.perf_counter() - started


def slack_calls_per_pipeline(sandbox: Sandbox) -> Counter[int]:
    """Slack calls (posts, edits, thread replies) made for each pipeline's card."""
    card_of: dict[str, int] = {}
    counts: Counter[int] = Counter()
    for message in sandbox.slack.messages:
        if message.text.startswith("Pipeline #") and message.thread_ts is None:
            card_of[message.ts] = int(message.text.split("#")[1].split(" ")[0])
    for call in sandbox.slack.calls:
        ts = call.args.get("thread_ts") or call.args.get("ts") or call.body.get("ts")
        if call.method in ("chat.postMessage", "chat.update") and ts in card_of:
            counts[card_of[ts]] += 1
    return counts


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def row(name: str, latencies: list[float], seconds: float) -> str:
    p50, p99 = percentile(latencies, 50) * 1000, percentile(latencies, 99) * 1000
    return (
        f"{name:<24} {len(latencies) / seconds:7.0f} deliveries/s  p50={p50:6.2f} ms  "
        f"p99={p99:6.2f} ms  max={max(latencies) * 1000:6.2f} ms  "
        f"mean={statistics.fmean(latencies) * 1000:6.2f} ms"
    )


async def main(pipelines: int, duplicates: float, concurrency: int) -> None:
    configure_logging("error")
    requests = burst(pipelines, duplicates)
    unique = len({r.key for r in requests})
    warm = [
        Request(0, f"warm-{i}", pipeline_hook("ml/warm", 9000 + i, "success", {}).payload())
        for i in range(50)
    ]
    async with running_sandbox() as sandbox, aiohttp.ClientSession() as session:
        bare, bare_url = await start_bare()
        try:
            await measure(session, bare_url, warm, concurrency)
            await measure(session, sandbox.url, warm, concurrency)
            await processing_lag(sandbox)
            calls_before = len(sandbox.slack.calls)
            bare_lat, bare_time = await measure(session, bare_url, requests, concurrency)
            bot_lat, bot_time = await measure(session, sandbox.url, requests, concurrency)
            lag = await processing_lag(sandbox)
        finally:
            await bare.cleanup()
        counts = await sandbox.bot.store.inbox.counts()
        burst_ids = {r.pipeline for r in requests}
        per_pipeline = {
            p: n for p, n in slack_calls_per_pipeline(sandbox).items() if p in burst_ids
        }
        total_calls = len(sandbox.slack.calls) - calls_before
    processed = counts.get("processed", 0) - len(warm)
    events = unique // pipelines
    print(
        f"webhook burst: {len(requests)} deliveries ({unique} distinct, "
        f"{len(requests) - unique} redeliveries) of {pipelines} pipelines, "
        f"concurrency {concurrency}"
    )
    print(row("bare aiohttp endpoint", bare_lat, bare_time))
    print(row("mlops-bot /gitlab/webhook", bot_lat, bot_time))
    for pct in (50, 99):
        ratio = percentile(bot_lat, pct) / percentile(bare_lat, pct)
        print(f"ratio p{pct} (bot / bare): {ratio:.2f}")
    print(
        f"processed: {processed} of {unique} distinct deliveries; still pending: "
        f"{counts.get('pending', 0)}"
    )
    print(f"processing lag after the last ack: {lag:.2f} s (bare endpoint: no processing)")
    print(
        f"Slack calls per pipeline ({events} deliveries each): max {max(per_pipeline.values())}, "
        f"mean {statistics.fmean(per_pipeline.values()):.1f} over {len(per_pipeline)} cards; "
        f"{total_calls} Slack calls in all (bare endpoint: none)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pipelines", type=int, default=100)
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of redeliveries")
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.pipelines, args.duplicates, args.concurrency))
