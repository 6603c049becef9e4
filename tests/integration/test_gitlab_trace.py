"""`/train logs` reads a job's trace as a stream and keeps only its tail: a 50 MB trace from the
GitLab stand-in over real HTTP, with python-gitlab unchanged, and the memory that took."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import AsyncIterator

import pytest
from tenacity import wait_none

from bot.sandbox.gitlab.server import GitLabStandIn, StandInProject
from integrations.gitlab import GitLabPipelines
from integrations.gitlab_trace import TailBuffer, tail

TOKEN = "glpat-trace-secret"
SIZE = 50 * 1024 * 1024
MEMORY_BOUND = 8 * 1024 * 1024
"""Peak growth allowed while tailing 50 MB: a few read chunks and 30 lines, not the trace."""


@pytest.fixture
async def stand_in() -> AsyncIterator[GitLabStandIn]:
    server = GitLabStandIn(token=TOKEN, projects=[StandInProject("ml/fraud")])
    await server.start()
    yield server
    await server.stop()


def big_trace() -> tuple[bytes, list[str]]:
    """About 50 MB of epochs, then coloured and carriage-return lines a terminal collapses."""
    line = b"epoch %08d loss 0.%06d " + b"." * 40 + b"\n"
    count = SIZE // len(line % (0, 0)) + 1
    body = b"".join(line % (n, n % 999_999) for n in range(count))
    ending = b"\x1b[32;1mJob succeeded\x1b[0;m\nuploading 10%\ruploading 100%\r\n"
    last = [(line % (n, n % 999_999)).decode().rstrip("\n") for n in range(count - 28, count)]
    return body + ending, [*last, "Job succeeded", "uploading 100%"]


async def test_a_50_mb_trace_is_tailed_without_holding_it(stand_in: GitLabStandIn) -> None:
    pipelines = GitLabPipelines.from_settings(stand_in.url, TOKEN, 10.0, wait=wait_none())
    pipeline = await pipelines.create("ml/fraud", "main", {})
    trace, expected = big_trace()
    assert len(trace) >= SIZE
    stand_in.set_trace("ml/fraud", pipeline.id, "train", trace)
    job = stand_in.pipeline("ml/fraud", pipeline.id).job("train")
    await pipelines.job_log_tail("ml/fraud", job.id, 1)  # warm: the project lookup, the client

    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        text = await pipelines.job_log_tail("ml/fraud", job.id, 30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert text.splitlines() == expected
    assert peak - before < MEMORY_BOUND, f"peak grew {(peak - before) / 2**20:.1f} MiB"
    assert stand_in.calls_to("GET", r"/jobs/\d+/trace$")[-1].status == 200


def test_the_tail_buffer_keeps_lines_across_chunks_and_bounds_long_ones() -> None:
    kept = TailBuffer(2, max_line=8)
    for chunk in (b"one\ntw", b"o\nthree\n", b"x" * 100, b"yz"):
        kept.feed(chunk)
    assert kept.text().endswith("three\nxxxxxxyz")  # the unfinished line keeps its last 8 bytes
    assert len(kept.kept) == 3  # one line more than asked: a trace ending in "\n" still has 2
    assert tail(kept.text(), 2) == "three\nxxxxxxyz"
    assert kept.size == 116


def test_the_tail_buffer_decodes_a_character_split_between_chunks() -> None:
    kept = TailBuffer(3)
    data = "température 42°C\n".encode()
    kept.feed(data[:3])
    kept.feed(data[3:])
    assert kept.text() == "température 42°C"
