"""Ack latency of signed slash commands: the bot's /slack/events against a bare HMAC endpoint.

    .venv/bin/python bench/ack_latency.py [--load 20:1000 --load 100:2000] [--repeat 1]

Both targets get the same signed requests in the same run; the bot runs as `mlops-bot sandbox`
runs it (SQLite store, Slack stand-in in the same process), so its figure includes the one store
write on the ack path (delivery dedupe) and competes with the work that follows each ack.
Each ``--load`` is ``concurrency:requests``; by default concurrency 20 (1,000 requests) and 100
(2,000 requests), the goals of issue 15: bot p99 at most 2x bare at both, under 50 ms at 100.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import statistics
import time
import urllib.parse

import aiohttp
from aiohttp import web

from bot.logs import configure_logging
from bot.sandbox.people import SIGNING_SECRET
from bot.sandbox.runner import Sandbox, running_sandbox
from bot.sandbox.signing import signed_headers


async def bare_endpoint(request: web.Request) -> web.Response:
    """Only what any Slack app must do: check the HMAC, then answer."""
    body = await request.text()
    stamp = request.headers.get("X-Slack-Request-Timestamp", "")
    base = f"v0:{stamp}:{body}".encode()
    expected = "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Slack-Signature", "")):
        return web.Response(status=401)
    return web.Response(status=200)


async def start_bare() -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/slack/events", bare_endpoint)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


def command_body(index: str, response_url: str) -> str:
    return urllib.parse.urlencode(
        {
            "team_id": "T0SANDBOX",
            "channel_id": "C0SANDBOX",
            "user_id": "U0DAVE",
            "command": "/train",
            "text": "list fraud",
            "trigger_id": f"bench-{index}",
            "response_url": response_url,
        }
    )


async def measure(
    session: aiohttp.ClientSession, url: str, bodies: list[str], concurrency: int
) -> list[float]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(body: str) -> None:
        async with gate:
            headers = signed_headers(SIGNING_SECRET, body)
            started = time.perf_counter()
            async with session.post(
                f"{url}/slack/events", data=body.encode(), headers=headers
            ) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(one(b) for b in bodies))
    return latencies


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def row(name: str, values: list[float]) -> str:
    p50, p99 = percentile(values, 50) * 1000, percentile(values, 99) * 1000
    return (
        f"{name:<26} n={len(values):<6} p50={p50:7.2f} ms  p99={p99:7.2f} ms  "
        f"mean={statistics.fmean(values) * 1000:7.2f} ms"
    )


async def one_load(
    sandbox: Sandbox, session: aiohttp.ClientSession, bare_url: str, load: tuple[int, int]
) -> tuple[list[float], list[float]]:
    """Bare, then bot, with the same bodies; waits until the bot has run every command."""
    concurrency, requests = load
    url = sandbox.slack.new_response_url(channel="C0SANDBOX", user="U0DAVE")
    tag = f"c{concurrency}-{time.monotonic_ns()}"
    warm = [command_body(f"{tag}-warm-{i}", url) for i in range(50)]
    await measure(session, bare_url, warm, concurrency)
    await measure(session, sandbox.url, warm, concurrency)
    bodies = [command_body(f"{tag}-{i}", url) for i in range(requests)]
    bare_lat = await measure(session, bare_url, bodies, concurrency)
    bot_lat = await measure(session, sandbox.url, bodies, concurrency)
    while sandbox.busy():  # noqa: ASYNC110 -- busy() is a poll, there is no event to wait on
        await asyncio.sleep(0.05)
    return bare_lat, bot_lat


def report(load: tuple[int, int], bare_lat: list[float], bot_lat: list[float]) -> None:
    concurrency, requests = load
    print(f"ack latency, {requests} signed slash commands at concurrency {concurrency}")
    print(row("bare aiohttp + HMAC", bare_lat))
    print(row("mlops-bot /slack/events", bot_lat))
    for pct in (50, 99):
        ratio = percentile(bot_lat, pct) / percentile(bare_lat, pct)
        print(f"ratio p{pct} (bot / bare): {ratio:.2f}")


async def main(loads: list[tuple[int, int]], repeat: int) -> None:
    configure_logging("warning")
    async with running_sandbox() as sandbox, aiohttp.ClientSession() as session:
        bare, bare_url = await start_bare()
        try:
            for attempt in range(repeat):
                for load in loads:
                    print(f"-- run {attempt + 1} of {repeat}")
                    report(load, *await one_load(sandbox, session, bare_url, load))
            await sandbox.bot.notifier.flush()
        finally:
            await bare.cleanup()


def parse_load(text: str) -> tuple[int, int]:
    concurrency, _, requests = text.partition(":")
    try:
        return int(concurrency), int(requests)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--load {text!r}: expected concurrency:requests, e.g. 20:1000"
        ) from None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--load", type=parse_load, action="append", dest="loads")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.loads or [(20, 1000), (100, 2000)], args.repeat))
