"""The run card and the /train replies: pure functions of runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.domain.accuracy import MetricsReport, Verdict, table
from bot.domain.paging import Page
from bot.domain.runs import Run, RunState
from bot.ports import NodeGpus, PendingGpuJob
from bot.views.actions import ActionId, RunTarget
from bot.views.blocks import (
    Block,
    Message,
    actions,
    button,
    code,
    context,
    escape,
    section,
    user,
    when,
)
from bot.views.listing import fitted, paging_note

STATE_ICONS = {
    RunState.QUEUED: ":hourglass_flowing_sand:",
    RunState.RUNNING: ":arrows_counterclockwise:",
    RunState.SUCCEEDED: ":white_check_mark:",
    RunState.FAILED: ":x:",
    RunState.CANCELED: ":no_entry_sign:",
}


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def title(run: Run) -> str:
    return f"{STATE_ICONS[run.state]} *{run.model} · run #{run.id}* — {run.state}"


def facts(run: Run) -> str:
    sha = f" @ {code(run.sha[:8])}" if run.sha else ""
    params = " ".join(code(f"{k}={v}") for k, v in sorted(run.params.items())) or "defaults"
    return (
        f"requested by {user(run.requester)} · ref {code(run.ref)}{sha} · dataset "
        f"{code(run.dataset or 'default')} · gpus {run.gpus} · params {params}"
    )


def progress(run: Run, now: datetime) -> str:
    start = run.started_at or run.created_at
    end = run.finished_at or now
    parts = [f"elapsed {duration((end - start).total_seconds())}"]
    if run.stage and not run.state.finished:
        parts.insert(0, f"at {code(run.stage)}")
    if run.detail and run.state != RunState.SUCCEEDED:
        parts.append(escape(run.detail))
    return " · ".join(parts)


def links(run: Run) -> str:
    if run.pipeline_id is not None:
        label = f"pipeline #{run.pipeline_id}"
        return f"<{run.web_url}|{label}>" if run.web_url else label
    if run.job_name:
        return f"job {code(run.job_name)} in {code(run.namespace or '')}"
    return "not started yet"


def metrics_table(report: MetricsReport, verdict: Verdict) -> str:
    champion = verdict.champion
    header = f"{'metric':<14}{'candidate':>11}{'champion':>11}{'delta':>10}"
    lines = [header]
    for row in table(report, champion):
        cand = f"{row.candidate:.4f}" if row.candidate is not None else "-"
        champ = f"{row.champion:.4f}" if row.champion is not None else "-"
        delta = f"{row.delta:+.4f}" if row.delta is not None else "-"
        lines.append(f"{escape(row.name, in_code=True):<14}{cand:>11}{champ:>11}{delta:>10}")
    against = f"against {champion.label}" if champion else "no champion to compare with"
    test_set = code(report.test_set or "?")
    return f"```{chr(10).join(lines)}```\ntest set {test_set} · {escape(against)}"


def verdict_blocks(report: MetricsReport | None, verdict: Verdict) -> list[Block]:
    """The accuracy table and the gate verdict (or the "no metrics" state)."""
    if report is None:
        return [section(":grey_question: *no metrics*: " + "; ".join(map(escape, verdict.reasons)))]
    blocks = [section(metrics_table(report, verdict))]
    if verdict.passed:
        blocks.append(section(":white_check_mark: *gate passed*"))
    else:
        blocks.append(section(":x: *gate failed*: " + "; ".join(map(escape, verdict.reasons))))
    return blocks


def accuracy_blocks(run: Run) -> list[Block]:
    if run.state != RunState.SUCCEEDED or run.verdict is None:
        return []
    report = MetricsReport(run.metrics, run.test_set) if run.metrics is not None else None
    return verdict_blocks(report, Verdict.from_json(run.verdict))


def next_step(run: Run, env: str | None) -> list[Block]:
    """Once the gate passed: a button that deploys this run to the first environment."""
    if env is None or run.state != RunState.SUCCEEDED or not (run.verdict or {}).get("passed"):
        return []
    value = RunTarget(model=run.model, env=env, run=run.id).model_dump()
    return [actions(button(f"Deploy to {env}", ActionId.DEPLOY_RUN, value, "primary"))]


def run_card(run: Run, now: datetime, next_env: str | None = None) -> Message:
    blocks = [
        section(title(run)),
        context(facts(run)),
        context(f"{progress(run, now)} · {links(run)}"),
        *accuracy_blocks(run),
        *next_step(run, next_env),
    ]
    return Message(text=f"{run.model} run #{run.id}: {run.state}", blocks=blocks)


LISTED_REF = 40  # characters of a ref shown in a listing (the card shows all of it)


def run_line(run: Run) -> str:
    ref = run.ref if len(run.ref) <= LISTED_REF else run.ref[: LISTED_REF - 1] + "…"
    return (
        f"{STATE_ICONS[run.state]} *#{run.id}* {run.model} {code(ref)} by "
        f"{user(run.requester)} · {run.state} · {when(run.created_at)}"
    )


def run_list(active: Page[Run], recent: Page[Run], model: str | None = None) -> Message:
    """One page of the active runs and of the finished ones, each saying what it left out."""
    command = "/train list" + (f" {model}" if model else "")
    blocks = []
    for title_, page, noun in (
        ("*Active runs*", active, "active runs"),
        ("*Recent runs*", recent, "finished runs"),
    ):
        lines = [run_line(r) for r in page.items] or ["none"]
        blocks.append(section(fitted(title_, lines, paging_note(page, noun, command))))
    return Message(text="training runs", blocks=blocks)


def log_tail(where: str, log: str) -> Message:
    text = escape(log.strip(), in_code=True) or "(empty log)"
    where = escape(where)
    return Message(text=f"log of {where}", blocks=[section(f"*{where}*\n```{text[-2800:]}```")])


def gpu_report(nodes: Sequence[NodeGpus], pending: Sequence[PendingGpuJob]) -> Message:
    rows = [f"• {code(n.node)}: {n.requested}/{n.allocatable} GPUs requested" for n in nodes]
    waiting = [
        f"• {code(f'{p.namespace}/{p.name}')} wants {p.gpus}: {escape(p.reason)}" for p in pending
    ]
    blocks = [
        section("*GPUs per node* (requested / allocatable)\n" + ("\n".join(rows) or "no nodes")),
        section("*Pending GPU jobs*\n" + ("\n".join(waiting) or "none")),
    ]
    return Message(text="GPU capacity", blocks=blocks)
