"""Outside API requests per minute while the bot follows N active training runs, per backend.

    .venv/bin/python bench/watch_cost.py [--runs 1,10,100] [--minutes 20] [--busy-minutes 3]
                                         [--round-runs 1,10,100,1000] [--no-kubernetes]

GitLab: the real PipelinePoller (ONE loop; per project, one list of the pipelines updated since
the last round, then the jobs of those that changed) and the real GitLabPipelines adapter
(python-gitlab) against the GitLab stand-in, which records every request it gets. Requests per
round and the event loop's worst stall are compared, in the same run, with a baseline: the
poller as it was before (each active run's pipeline and jobs every round, all at once).
Kubernetes: ONE real JobWatchers watch (Jobs + Pods, the bot's label selector) against the
control plane scripts/kube provisions (etcd, kube-apiserver, controller-manager, scheduler and a
fake node with 2 GPUs; no kubelet, so the bench moves bound pods itself through a separate
client); the watch's own client counts its requests with an aiohttp TraceConfig.

Time is scaled 1/100 so that 20 minutes of bot time take 12 s: the poller's 10 s -> 120 s
backoff runs as 0.1 s -> 1.2 s and the watch's 300 s server timeout as 3 s. Only the waits are
scaled: the work of a polling round takes the time it takes, so it counts once in bot time.
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

import aiohttp
from kubernetes.aio.client import ApiClient, ApiException, BatchV1Api, Configuration, CoreV1Api
from kubernetes.aio.config import load_kube_config

from bot.config.training import TrainingSettings
from bot.domain.runs import Run, RunState
from bot.logs import configure_logging
from bot.ports import JobSpec, JobUpdate, PipelineStatus
from bot.sandbox.gitlab.server import GitLabStandIn, JobPlan, RecordedCall, StandInProject
from bot.services.training.followers import (
    LABEL_SELECTOR,
    OVERLAP,
    JobWatchers,
    PipelinePoller,
    fingerprint,
)
from bot.services.training.progress import RunProgress
from bot.store import Store
from integrations.gitlab import GitLabPipelines
from integrations.kubernetes.cluster import KubernetesCluster, api_client

SCALE = 100  # 1 real second = 100 s of bot time
TOKEN = "glpat-bench-watch-cost"
PROJECT = "ml/fraud"
# One job per stage keeps a pipeline moving for 40 steps (busy variant); 20 jobs are one page of
# GitLab's jobs list, so reading a pipeline stays 2 requests as with the default 3-job plan.
PLAN = [JobPlan(f"step-{i:02}", f"stage-{i:02}") for i in range(1, 21)]
NAMESPACE = "default"
KUBE_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kube"
KUBE_WAIT = 60.0  # real seconds for pods to appear, or to be gone after clean-up
BOT_LABELS = {"app.kubernetes.io/managed-by": "mlops-bot", "mlops-bot/model": "fraud"}

DEFAULTS = TrainingSettings()
POLL_SECONDS = DEFAULTS.poll_seconds
POLL_MAX_SECONDS = DEFAULTS.poll_max_seconds
WATCH_SECONDS = int(inspect.signature(KubernetesCluster).parameters["watch_seconds"].default)


@dataclass
class Row:
    backend: str
    variant: str
    runs: int
    requests: int
    real_window: float  # seconds
    bot_window: float  # seconds of bot time the window stands for
    detail: str

    @property
    def per_minute(self) -> float:
        return self.requests / self.bot_window * 60


class Progress:
    """Stands in for RunProgress (cards need Slack): counts what the followers hand it."""

    def __init__(self) -> None:
        self.pipeline_changes = 0
        self.job_updates = 0

    async def pipeline_changed(self, project: str, status: PipelineStatus) -> bool:
        self.pipeline_changes += 1
        return True

    async def job_changed(self, update: JobUpdate) -> None:
        self.job_updates += 1


async def cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# ---- GitLab ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def gitlab_runs(runs: int) -> AsyncIterator[tuple[GitLabStandIn, GitLabPipelines, Store]]:
    """A fresh stand-in and store with ``runs`` active runs whose pipelines are running."""
    stand_in = GitLabStandIn(token=TOKEN, projects=[StandInProject(path=PROJECT, jobs=PLAN)])
    await stand_in.start()
    with tempfile.TemporaryDirectory(prefix="watch-cost-") as tmp:
        store = Store.from_url(f"sqlite:///{tmp}/bot.db")
        try:
            await store.migrate()
            pipelines = GitLabPipelines.from_settings(url=stand_in.url, token=TOKEN, timeout=5)
            for _ in range(runs):
                run = await store.runs.create(
                    Run(
                        id=0,
                        model="fraud",
                        backend="gitlab",
                        state=RunState.QUEUED,
                        requester="U0BENCH",
                        ref="main",
                        created_at=datetime.now(UTC),
                        gpus=1,
                        project=PROJECT,
                    )
                )
                status = await pipelines.create(PROJECT, "main", {"MLOPS_RUN_ID": str(run.id)})
                await store.runs.update(
                    run.id, pipeline_id=status.id, sha=status.sha, web_url=status.web_url
                )
                stand_in.advance(PROJECT, status.id)  # the first job starts: "running"
            yield stand_in, pipelines, store
        finally:
            await store.close()
            await stand_in.stop()


class TimedWake(asyncio.Event):
    """Stands in for the poller's wake-up event (``poller.woken``): the poller sleeps by waiting
    on it, so it records every sleep (the only part of the poller's time that is scaled) and
    can act each time the poller goes to sleep."""

    def __init__(self, on_sleep: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.on_sleep = on_sleep
        self.sleeps: list[tuple[float, float]] = []
        self.asleep_since: float | None = None

    async def wait(self) -> Literal[True]:
        self.asleep_since = began = time.monotonic()
        if self.on_sleep is not None:
            self.on_sleep()
        try:
            return await super().wait()
        finally:
            self.sleeps.append((began, time.monotonic()))
            self.asleep_since = None

    def bot_seconds(self, start: float, end: float) -> float:
        """Bot time between two real instants: sleeps count x SCALE, the work as it took."""
        spans = list(self.sleeps)
        if self.asleep_since is not None:
            spans.append((self.asleep_since, end))
        slept = sum(max(0.0, min(e, end) - max(b, start)) for b, e in spans)
        return (end - start) + slept * (SCALE - 1)


async def measure_poller(runs: int, bot_seconds: float, *, busy: bool) -> list[Row]:
    """Run the real poller until ``bot_seconds`` of bot time have passed; with ``busy`` every
    pipeline moves one step each time the poller goes to sleep, so each round sees every run
    change and the wait stays at poll_seconds."""
    every, max_every = POLL_SECONDS / SCALE, POLL_MAX_SECONDS / SCALE
    async with gitlab_runs(runs) as (stand_in, pipelines, store):
        progress = Progress()
        poller = PipelinePoller(
            store,
            pipelines,
            cast(RunProgress, progress),
            every=every,
            max_every=max_every,
            overlap=OVERLAP / SCALE,  # a wait, scaled like the others
        )

        def move_all() -> None:
            for pipeline in stand_in.pipelines(PROJECT):
                stand_in.advance(PROJECT, pipeline.id)

        wake = poller.woken = TimedWake(move_all if busy else None)
        stand_in.calls.clear()
        started = ended = time.monotonic()
        task = asyncio.create_task(poller.run())
        give_up = started + 4 * bot_seconds / SCALE + 60  # bounded however slow the machine
        try:
            while ended < give_up and wake.bot_seconds(started, ended) < bot_seconds:
                await asyncio.sleep(0.005)
                ended = time.monotonic()
        finally:
            await cancel(task)
    calls = [c for c in stand_in.calls if c.at < ended]
    if any(c.method != "GET" or c.status != 200 for c in calls):
        raise RuntimeError("the poller made requests other than successful GETs")
    round_starts = [started, *(e for _, e in wake.sleeps if e < ended)]
    kinds = Counter("jobs" if c.path.endswith("/jobs") else "pipeline" for c in calls)
    detail = (
        f"{len(round_starts)} rounds: {kinds['pipeline']} pipeline + {kinds['jobs']} jobs "
        f"GETs; changes seen: {progress.pipeline_changes}"
    )
    variant = "busy: every run moves each round" if busy else "idle: from start, backing off"
    bot = wake.bot_seconds(started, ended)
    rows = [Row("gitlab", variant, runs, len(calls), ended - started, bot, detail)]
    if not busy:
        steady = steady_part(runs, calls, wake, round_starts, max_every)
        if steady is not None:
            rows.append(steady)
    return rows


def steady_part(
    runs: int,
    calls: list[RecordedCall],
    wake: TimedWake,
    round_starts: list[float],
    max_every: float,
) -> Row | None:
    """From the first round after a full ``max_every`` sleep to the last round started in the
    window: the cost once backoff is at its maximum."""
    late = [
        i
        for i, (began, woke) in enumerate(wake.sleeps, start=1)
        if i < len(round_starts) and woke - began >= 0.9 * max_every
    ]
    if len(late) < 2:
        return None
    first, last = late[0], late[-1]
    start, end = round_starts[first], round_starts[last]
    requests = sum(1 for c in calls if start <= c.at < end)
    bot = wake.bot_seconds(start, end)
    detail = f"rounds {first + 1}-{last + 1}, one every {bot / (last - first):.1f} s"
    return Row("gitlab", "steady: idle, backoff at max", runs, requests, end - start, bot, detail)


async def gitlab_rows(sizes: list[int], minutes: float, busy_minutes: float) -> list[Row]:
    rows: list[Row] = []
    for runs in sizes:
        rows += await measure_poller(runs, minutes * 60, busy=False)
    for runs in sizes:
        rows += await measure_poller(runs, busy_minutes * 60, busy=True)
    order = ("idle", "steady", "busy")
    return sorted(rows, key=lambda r: (order.index(r.variant.split(":")[0]), r.runs))


# ---- GitLab: requests per round and loop stalls, against the per-run baseline ------------------


class PerRunPoller(PipelinePoller):
    """The baseline: the poller before per-project polling. Every round reads every active
    run's pipeline and its jobs (2 requests per run), all runs gathered at once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.signatures: dict[int, tuple[str, tuple[str, ...]]] = {}

    async def poll_once(self) -> bool:
        runs = [r for r in await self.store.runs.active("gitlab") if r.pipeline_id is not None]
        active = {r.id for r in runs}
        self.signatures = {k: v for k, v in self.signatures.items() if k in active}
        return any(await asyncio.gather(*(self.poll_run(run) for run in runs)))

    async def poll_run(self, run: Run) -> bool:
        assert run.project is not None and run.pipeline_id is not None
        async with self.gate:
            status = await self.pipelines.status(run.project, run.pipeline_id)
        signature = fingerprint(status)
        if self.signatures.get(run.id) == signature:
            return False
        self.signatures[run.id] = signature
        await self.progress.pipeline_changed(run.project, status)
        return True


class Heartbeat:
    """How late a 5 ms sleep wakes: the longest the event loop was blocked meanwhile."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags.append(time.perf_counter() - began - self.interval)

    def p99_max(self) -> tuple[float, float]:
        ordered = sorted(self.lags) or [0.0]
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], ordered[-1]


@dataclass
class RoundRow:
    runs: int
    poller: str
    rounds: dict[str, int]  # round kind -> requests
    lag_p99: float
    lag_max: float


ROUNDS = ("first", "idle", "10% moved", "all moved")


@contextlib.asynccontextmanager
async def served_apart(stand_in: GitLabStandIn) -> AsyncIterator[None]:
    """The stand-in served from its own thread and event loop, so that its work (answering
    thousands of requests) does not count as a stall of the bot's loop."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gitlab-stand-in", daemon=True)
    thread.start()
    try:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(stand_in.start(), loop))
        yield
    finally:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(stand_in.stop(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, 10)
        loop.close()


async def fast_runs(runs: int, stand_in: GitLabStandIn) -> tuple[Store, GitLabPipelines, str]:
    """``runs`` running pipelines made inside the stand-in (no HTTP) and their runs stored."""
    tmp = tempfile.mkdtemp(prefix="watch-rounds-")
    store = Store.from_url(f"sqlite:///{tmp}/bot.db")
    await store.migrate()
    project = stand_in.state.project(PROJECT)
    for _ in range(runs):
        pipeline = stand_in.state.create(project, "main", source="api", variables={}, inputs={})
        stand_in.advance(PROJECT, pipeline.id)
        stand_in.advance(PROJECT, pipeline.id)
        run = await store.runs.create(
            Run(
                id=0,
                model="fraud",
                backend="gitlab",
                state=RunState.RUNNING,
                requester="U0BENCH",
                ref="main",
                created_at=datetime.now(UTC),
                gpus=1,
                project=PROJECT,
            )
        )
        await store.runs.update(run.id, pipeline_id=pipeline.id)
    pipelines = GitLabPipelines.from_settings(url=stand_in.url, token=TOKEN, timeout=10)
    return store, pipelines, tmp


async def measure_rounds(runs: int, poller_kind: type[PipelinePoller]) -> RoundRow:
    """The four kinds of round, in order, on one poller; the heartbeat runs throughout."""
    stand_in = GitLabStandIn(token=TOKEN, projects=[StandInProject(path=PROJECT, jobs=PLAN)])
    async with served_apart(stand_in):
        return await measure_served(runs, poller_kind, stand_in)


async def measure_served(
    runs: int, poller_kind: type[PipelinePoller], stand_in: GitLabStandIn
) -> RoundRow:
    store, pipelines, tmp = await fast_runs(runs, stand_in)
    poller = poller_kind(
        store, pipelines, cast(RunProgress, Progress()), every=POLL_SECONDS, max_every=60
    )
    heartbeat = Heartbeat()
    counts: dict[str, int] = {}
    try:
        heartbeat.task = asyncio.create_task(heartbeat.beat())
        for kind in ROUNDS:
            moving = {"10% moved": max(1, runs // 10), "all moved": runs}.get(kind, 0)
            for pipeline in stand_in.pipelines(PROJECT)[:moving]:
                stand_in.advance(PROJECT, pipeline.id)
            before = len(stand_in.calls)
            await poller.poll_once()
            counts[kind] = len(stand_in.calls) - before
        await cancel(heartbeat.task)
    finally:
        await store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    p99, worst = heartbeat.p99_max()
    name = "per run (before)" if poller_kind is PerRunPoller else "per project (now)"
    return RoundRow(runs, name, counts, p99 * 1000, worst * 1000)


async def round_rows(sizes: list[int]) -> list[RoundRow]:
    rows = []
    for runs in sizes:
        rows.append(await measure_rounds(runs, PerRunPoller))
        rows.append(await measure_rounds(runs, PipelinePoller))
    return rows


def round_table(rows: list[RoundRow]) -> list[str]:
    head = (
        f"{'N':>5} {'poller':<18} "
        + " ".join(f"{kind:>10}" for kind in ROUNDS)
        + f" {'loop lag p99':>13} {'max':>9}"
    )
    lines = [head, "-" * len(head)]
    baseline: dict[int, RoundRow] = {}
    for row in rows:
        cells = []
        for kind in ROUNDS:
            base = baseline.get(row.runs)
            ratio = f" {row.rounds[kind] / base.rounds[kind]:.2f}x" if base else ""
            cells.append(f"{str(row.rounds[kind]) + ratio:>10}")
        lines.append(
            f"{row.runs:>5} {row.poller:<18} "
            + " ".join(cells)
            + f" {row.lag_p99:>10.1f} ms {row.lag_max:>6.1f} ms"
        )
        baseline.setdefault(row.runs, row)
    return lines


# ---- Kubernetes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kube_script(*args: str, timeout: float) -> str:
    done = subprocess.run(  # noqa: S603 - the project's own script, fixed arguments
        [str(KUBE_SCRIPT), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"scripts/kube {args[0]} failed: {last}")
    return done.stdout.strip()


@contextlib.contextmanager
def control_plane() -> Iterator[Path]:
    """As tests/kube.py's running_kube: build (a no-op when cached), start, stop, clean up."""
    kube_script("build", timeout=3600)
    workdir = tempfile.mkdtemp(prefix="watch-cost-kube-")
    try:
        output = kube_script("start", workdir, str(free_port()), timeout=180)
        yield Path(output.splitlines()[-1])
    finally:
        with contextlib.suppress(Exception):
            kube_script("stop", workdir, timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


async def counted_cluster(kubeconfig: Path, seen: list[tuple[str, bool]]) -> KubernetesCluster:
    """The bot's cluster adapter on a client whose every HTTP request lands in ``seen``."""

    async def on_request_start(
        session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        seen.append((params.method, params.url.query.get("watch") == "true"))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    configuration = Configuration(trace_configs=[trace])
    await load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    api = ApiClient(configuration=configuration)
    return KubernetesCluster(api, watch_seconds=max(1, round(WATCH_SECONDS / SCALE)))


async def measure_watch(kubeconfig: Path, setup: ApiClient, runs: int, window: float) -> list[Row]:
    core, batch = CoreV1Api(setup), BatchV1Api(setup)
    creator = KubernetesCluster(setup)  # shares ``setup``, which the caller closes
    gate = asyncio.Semaphore(10)

    async def create(index: int) -> None:
        labels = {**BOT_LABELS, "mlops-bot/run": str(index)}
        spec = JobSpec(
            name=f"mlops-fraud-{runs}-{index}",
            namespace=NAMESPACE,
            image="registry.example.com/ml/fraud-train:1.4",
            labels=labels,
            env={"MLOPS_RUN_ID": str(index), "DATASET": "v7"},
            gpus=1,
            command=("python", "-m", "train"),
        )
        async with gate:
            await creator.create_job(spec)

    try:
        await asyncio.gather(*(create(i) for i in range(1, runs + 1)))
        await wait_for_pods(core, runs)
        seen: list[tuple[str, bool]] = []
        cluster = await counted_cluster(kubeconfig, seen)
        progress = Progress()
        watchers = JobWatchers(cluster, cast(RunProgress, progress), [NAMESPACE])
        try:
            watch = asyncio.create_task(watchers.loops()[0]())
            kubelet = asyncio.create_task(play_kubelet(core, window))
            await asyncio.sleep(window)
            requests = len(seen)
            await cancel(watch)
            await cancel(kubelet)
        finally:
            await cluster.close()
    finally:
        await clean_up(core, batch)
    lists = sum(1 for method, watching in seen[:requests] if method == "GET" and not watching)
    watches = sum(1 for method, watching in seen[:requests] if method == "GET" and watching)
    others = requests - lists - watches
    detail = f"{lists} LIST + {watches} WATCH" + (f" + {others} other" if others else "")
    detail += f"; job updates delivered: {progress.job_updates}"
    bot = window * SCALE  # the watch does no polling work: its time is all waiting
    steady = f"WATCH only (the LISTs are once per start, or after a 410 Gone), {watches} of them"
    return [
        Row("kubernetes", "ONE watch/namespace (Jobs+Pods)", runs, requests, window, bot, detail),
        Row("kubernetes", "steady: re-WATCHes only", runs, watches, window, bot, steady),
    ]


async def wait_for_pods(core: CoreV1Api, runs: int) -> None:
    """Until the job controller has made every job's pod (bounded)."""
    deadline = time.monotonic() + KUBE_WAIT
    while time.monotonic() < deadline:
        pods = await core.list_namespaced_pod(NAMESPACE, label_selector=LABEL_SELECTOR)
        if len(pods.items) >= runs:
            return
        await asyncio.sleep(0.2)


async def play_kubelet(core: CoreV1Api, window: float) -> None:
    """Moves the pods the scheduler bound: Running after ~1/4 of the window, Succeeded after
    ~1/2 (the node's 2 GPUs hold 2 pods; the rest stay Pending with the scheduler's reason)."""
    await asyncio.sleep(window / 4)
    for phase in ("Running", "Succeeded"):
        pods = await core.list_namespaced_pod(NAMESPACE, label_selector=LABEL_SELECTOR)
        for pod in pods.items:
            if pod.spec.node_name:
                await set_phase(core, pod, phase)
        await asyncio.sleep(window / 4)


async def set_phase(core: CoreV1Api, pod: Any, phase: str) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if phase == "Running":
        state: dict[str, Any] = {"running": {"startedAt": now}}
    else:
        state = {
            "terminated": {
                "exitCode": 0,
                "reason": "Completed",
                "startedAt": now,
                "finishedAt": now,
            }
        }
    container = pod.spec.containers[0]
    status = {
        "phase": phase,
        "startTime": now,
        "containerStatuses": [
            {
                "name": container.name,
                "image": container.image,
                "imageID": "",
                "ready": phase == "Running",
                "restartCount": 0,
                "state": state,
            }
        ],
    }
    await core.patch_namespaced_pod_status(pod.metadata.name, NAMESPACE, {"status": status})


async def clean_up(core: CoreV1Api, batch: BatchV1Api) -> None:
    """Delete the bot's jobs, then their pods with grace 0 (no kubelet finishes deletions)."""
    await batch.delete_collection_namespaced_job(
        NAMESPACE, label_selector=LABEL_SELECTOR, propagation_policy="Background"
    )
    deadline = time.monotonic() + KUBE_WAIT
    while time.monotonic() < deadline:
        jobs = await batch.list_namespaced_job(NAMESPACE, label_selector=LABEL_SELECTOR)
        pods = await core.list_namespaced_pod(NAMESPACE, label_selector=LABEL_SELECTOR)
        if not jobs.items and not pods.items:
            return
        for pod in pods.items:
            with contextlib.suppress(ApiException):
                await core.delete_namespaced_pod(
                    pod.metadata.name, NAMESPACE, grace_period_seconds=0
                )
        await asyncio.sleep(0.2)


async def kubernetes_rows(kubeconfig: Path, sizes: list[int], window: float) -> list[Row]:
    setup = await api_client(kubeconfig)
    try:
        await clean_up(CoreV1Api(setup), BatchV1Api(setup))
        rows = [
            row for runs in sizes for row in await measure_watch(kubeconfig, setup, runs, window)
        ]
        return sorted(rows, key=lambda row: (row.variant.startswith("steady"), row.runs))
    finally:
        await setup.close()  # type: ignore[no-untyped-call]


# ---- report ------------------------------------------------------------------------------------


def table(rows: list[Row]) -> list[str]:
    head = (
        f"{'backend':<11} {'variant':<34} {'N':>4} {'requests measured':>17}  "
        f"{'measured window: real -> bot time':<34} {'req/min at defaults':>19}  detail"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        window = f"{row.real_window:5.1f} s -> {row.bot_window / 60:5.1f} min"
        lines.append(
            f"{row.backend:<11} {row.variant:<34} {row.runs:>4} {row.requests:>17}  "
            f"{window:<34} {row.per_minute:>19.2f}  {row.detail}"
        )
    return lines


async def main(
    sizes: list[int], minutes: float, busy_minutes: float, kube: bool, round_sizes: list[int]
) -> None:
    configure_logging("warning")
    rounds = await round_rows(round_sizes)
    rows = await gitlab_rows(sizes, minutes, busy_minutes)
    kube_note = ""
    if kube:
        print(
            "provisioning Kubernetes with scripts/kube (the first build takes 5-10 min) ...",
            file=sys.stderr,
            flush=True,
        )
        try:
            with control_plane() as kubeconfig:
                rows += await kubernetes_rows(kubeconfig, sizes, minutes * 60 / SCALE)
        except Exception as err:  # any failure to provision or to run: report, keep GitLab's
            kube_note = f"kubernetes: skipped ({type(err).__name__}: {err})"
    else:
        kube_note = "kubernetes: skipped (--no-kubernetes)"
    print("GitLab requests per polling round, N active runs in one project; ratio against the")
    print("per-run baseline measured just before (a moved run = one more job or status)")
    print()
    print("\n".join(round_table(rounds)))
    print()
    print("Outside API requests per minute while the bot follows N active training runs")
    print(
        f"(time scaled 1/{SCALE}: 1 real s of waiting = {SCALE} s of bot time; req/min is per "
        "minute of bot time at the bot's default settings)"
    )
    print()
    print("\n".join(table(rows)))
    if kube_note:
        print(kube_note)
    notes = [
        f"gitlab: ONE PipelinePoller loop (no webhooks configured). A round lists each "
        "project's pipelines updated since the last round (one GET per 100 of them), then reads "
        "the jobs of the runs' pipelines that changed (one GET each; a run whose pipeline was "
        "not listed and never seen, e.g. after a restart, is read whole once: 2 GETs). The wait "
        f"is poll_seconds={POLL_SECONDS:g} s after a change, doubling while nothing changes up to "
        f"poll_max_seconds={POLL_MAX_SECONDS:g} s (bench: {POLL_SECONDS / SCALE:g} -> "
        f"{POLL_MAX_SECONDS / SCALE:g} s): idle runs cost 1 request per project per "
        f"{POLL_MAX_SECONDS:g} s, whatever N; runs that move 1 each per round.",
        f"kubernetes: ONE watch per namespace over Jobs and Pods with the bot's label selector: "
        f"one LIST of each at start, then one WATCH of each per watch_seconds={WATCH_SECONDS} s "
        f"(bench: {WATCH_SECONDS / SCALE:g} s); changes arrive on the open stream. Independent "
        "of N and of how much the runs move.",
        f"bot time = real waiting x {SCALE} + the real time the polling rounds' work took (work "
        "is not scaled). Only requests to GitLab / the Kubernetes API server are counted.",
    ]
    print()
    print("\n".join(textwrap.fill(note, width=100, subsequent_indent="  ") for note in notes))


def sizes_arg(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=sizes_arg, default=[1, 10, 100], help="N values: 1,10,100")
    parser.add_argument(
        "--minutes", type=float, default=20.0, help="bot minutes per idle/watch measure (20)"
    )
    parser.add_argument(
        "--busy-minutes", type=float, default=3.0, help="bot minutes per busy measure (3)"
    )
    parser.add_argument(
        "--round-runs",
        type=sizes_arg,
        default=[1, 10, 100, 1000],
        help="N values for requests per round and loop stalls: 1,10,100,1000",
    )
    parser.add_argument("--no-kubernetes", action="store_true")
    args = parser.parse_args()
    most = (2 * len(PLAN) - 2) * POLL_SECONDS / 60  # a pipeline of PLAN moves 2 x len(PLAN) times
    if not 0 < args.busy_minutes <= most:
        parser.error(f"--busy-minutes must be above 0 and at most {most:g}")
    if args.minutes <= 0 or not args.runs or min(args.runs) < 1:
        parser.error("--minutes must be above 0 and --runs positive")
    kube = not args.no_kubernetes
    asyncio.run(main(args.runs, args.minutes, args.busy_minutes, kube, args.round_runs))
