"""The A/B card, its approval prompt for weight changes, and the A/B status reply: pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.ab import AbChange, AbState, ChangeState, Experiment, GuardReading, share
from bot.domain.runs import Run
from bot.ports import ServiceState, Split
from bot.views.actions import ActionId, ChangeTarget
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
from bot.views.deploys import run_summary

ICONS = {
    AbState.DEPLOYING: ":hourglass_flowing_sand:",
    AbState.RUNNING: ":large_blue_circle:",
    AbState.PROMOTING: ":rocket:",
    AbState.PROMOTED: ":white_check_mark:",
    AbState.ABORTED: ":leftwards_arrow_with_hook:",
    AbState.FAILED: ":x:",
}
HISTORY_LINES = 12


@dataclass(frozen=True)
class Prompt:
    """What the weight-change prompt needs beyond the change."""

    needed: int
    approve_emoji: str
    reject_emoji: str


@dataclass(frozen=True)
class Guarding:
    interval: float
    breaches: int


def tripped(history: Sequence[AbChange]) -> bool:
    return any(c.action == "guard" for c in history)


def header(e: Experiment, history: Sequence[AbChange]) -> str:
    icon = ":red_circle:" if e.state == AbState.ABORTED and tripped(history) else ICONS[e.state]
    return f"{icon} *{e.model}/{e.env} · A/B #{e.id}* — {e.state}"


def image(ref: str) -> str:
    name = ref.rsplit("/", 1)[-1] or "unknown"
    return name[:40] + "…" if len(name) > 41 else name


def weights_line(e: Experiment) -> str:
    if e.weight_a is None or e.weight_b is None:
        return "weights not read yet"
    return f"A {100 - e.b_share}% · B {e.b_share}% (ELBv2 weights {e.weight_a}/{e.weight_b})"


def sides(e: Experiment, run_a: Run | None, run_b: Run | None) -> str:
    b_image = code(image(e.image_b)) if e.image_b else "not deployed yet"
    return (
        f"*A* ({e.env}): {code(image(e.image_a))} · {run_summary(run_a)}\n"
        f"*B* ({e.b_env}): {b_image} · {run_summary(run_b)}\n"
        f"*traffic*: {weights_line(e)}"
    )


def number(kind: str, v: float | None) -> str:
    if v is None:
        return "no data"
    if kind == "5xx":
        return f"{v:.2%}"
    if kind == "latency":
        return f"{v * 1000:.0f} ms"
    return f"{v:.4g}"


PREFIX = {"5xx": "B - A", "latency": "B/A", "b_over_a": "B/A", "b_minus_a": "B - A"}


def amount(kind: str, v: float) -> str:
    if kind == "5xx":
        return f"{v * 100:+.2f} pt"
    if kind in ("latency", "b_over_a"):
        return f"{v:.2f}x"
    return f"{v:+.4g}" if kind == "b_minus_a" else f"{v:.4g}"


def compared(kind: str, v: float) -> str:
    return f"{PREFIX.get(kind, 'B')} {amount(kind, v)}"


def limits(r: GuardReading) -> str:
    low = [f"≥ {amount(r.kind, r.low)}"] if r.low is not None else []
    high = [f"≤ {amount(r.kind, r.high)}"] if r.high is not None else []
    return " and ".join(low + high)


def reading_text(r: GuardReading) -> str:
    values = f"A {number(r.kind, r.a)} · B {number(r.kind, r.b)}"
    verdict = (
        escape(r.note) if r.value is None else f"{compared(r.kind, r.value)} (limit {limits(r)})"
    )
    return f"{escape(r.name)}: {values} → {verdict}"


def reading_line(r: GuardReading) -> str:
    return f"• {':red_circle: ' if r.breached else ''}{reading_text(r)}"


def guard_blocks(e: Experiment, guarding: Guarding) -> list[Block]:
    blocks: list[Block] = []
    if e.readings:
        checked = f" · checked {when(e.checked_at)}" if e.checked_at else ""
        head = f"*guard* · {e.breaches}/{guarding.breaches} breaches in a row{checked}"
        blocks.append(section(head + "\n" + "\n".join(reading_line(r) for r in e.readings)))
    if e.guard_error:
        blocks.append(section(f":warning: {escape(e.guard_error)} (retrying)"))
    return blocks


def prompt_blocks(change: AbChange, prompt: Prompt) -> list[Block]:
    value = ChangeTarget(change=change.id).model_dump()
    expiry = f" · expires {when(change.expires_at)}" if change.expires_at else ""
    votes = f"approvals {len(change.approvers)}/{prompt.needed}"
    if change.approvers:
        votes += ": " + ", ".join(user(u) for u in change.approvers)
    return [
        section(
            f":raised_hand: {user(change.actor)} asks to move B from {change.weight_from}% to "
            f"*{change.weight_to}%*; {votes}"
        ),
        actions(
            button("Approve", ActionId.AB_APPROVE, value, "primary"),
            button("Reject", ActionId.AB_REJECT, value, "danger"),
        ),
        context(
            f"{prompt.needed} approval(s) from the environment's approvers needed; reacting with "
            f":{prompt.approve_emoji}: counts as approve, :{prompt.reject_emoji}: as "
            f"reject{expiry}"
        ),
    ]


DONE_WORDS = {
    "start": "started",
    "set": "set",
    "deploy": "finished",
    "promote": "started promoting",
    "promoted": "promoted",
    "abort": "aborted",
    "guard": "aborted",
}


def change_line(c: AbChange) -> str:
    """One history line: when, who, what (B's share before and after), and how it ended."""
    weights = (
        f" B {c.weight_from}% → {c.weight_to}%"
        if c.weight_to is not None and c.weight_from is not None
        else ""
    )
    state = "" if c.state == ChangeState.DONE else f" · {c.state}"
    votes = f" · approved by {', '.join(user(u) for u in c.approvers)}" if c.approvers else ""
    detail = f": {escape(c.detail)}" if c.detail and c.detail != "approved" else ""
    if c.state == ChangeState.REJECTED and c.rejecters:
        detail = ": rejected by " + ", ".join(user(u) for u in c.rejecters)
    verb = DONE_WORDS.get(c.action, c.action) if c.state == ChangeState.DONE else c.action
    return f"• {when(c.at)} {user(c.actor)} {verb}{weights}{detail}{votes}{state}"


def ab_card(
    e: Experiment,
    runs: tuple[Run | None, Run | None],
    history: Sequence[AbChange],
    guarding: Guarding,
    prompt: Prompt | None = None,
) -> Message:
    blocks = [section(header(e, history)), section(sides(e, *runs))]
    blocks.append(
        context(
            f"requested by {user(e.requester)} · guard every {guarding.interval:g}s while B "
            f"has traffic; {guarding.breaches} breaches in a row put all traffic back on A"
        )
    )
    blocks += guard_blocks(e, guarding)
    if e.detail and not e.state.active:
        blocks.append(section(f"*{e.state}*: {escape(e.detail)} · {user(e.requester)}"))
    pending = next((c for c in history if c.state == ChangeState.AWAITING_APPROVAL), None)
    if pending is not None and prompt is not None and e.state.active:
        blocks += prompt_blocks(pending, prompt)
    lines = [change_line(c) for c in history[-HISTORY_LINES:]]
    if lines:
        blocks.append(section("*history*\n" + "\n".join(lines)))
    text = f"{e.model}/{e.env} A/B #{e.id}: {e.state}, B {e.b_share}%"
    return Message(text=text, blocks=blocks)


@dataclass(frozen=True)
class AbReport:
    """What `/deploy <model> ab <env> status` shows, each part read from its source."""

    model: str
    env: str
    b_env: str
    split: Split | None
    a: ServiceState | None
    b: ServiceState | None
    experiment: Experiment | None
    problems: tuple[str, ...] = ()


def service_line(name: str, env: str, state: ServiceState | None) -> str:
    if state is None:
        return f"*{name}* ({env}): not known"
    images = ", ".join(code(image(i)) for i in state.images) or "no image"
    return (
        f"*{name}* ({env}): {escape(state.service)} revision {state.revision} · {images} · "
        f"{state.running}/{state.desired} running"
    )


def split_text(split: Split | None) -> str:
    if split is None:
        return "traffic: not known"
    b = share(split.a, split.b)
    return f"traffic (ELBv2): A {100 - b}% · B {b}% (weights {split.a}/{split.b})"


def ab_status_reply(r: AbReport, guarding: Guarding) -> Message:
    lines = [
        split_text(r.split),
        service_line("A", r.env, r.a),
        service_line("B", r.b_env, r.b),
    ]
    e = r.experiment
    if e is None:
        lines.append("no A/B experiment yet")
    else:
        lines.append(f"experiment #{e.id} {e.state}, requested by {user(e.requester)}")
    blocks = [section(f"*{r.model}/{r.env} A/B*\n" + "\n".join(lines))]
    if e is not None:
        blocks += guard_blocks(e, guarding)
    if r.problems:
        blocks.append(context("\n".join(f":warning: {escape(p)}" for p in r.problems)))
    return Message(text=f"{r.model}/{r.env} A/B status", blocks=blocks)


def split_summary(split: Split | None, experiment: Experiment | None, problem: str = "") -> str:
    """The split as one phrase for /deploy status."""
    if split is None:
        return f"A/B: {escape(problem) or 'not known'}"
    b = share(split.a, split.b)
    running = f" (A/B #{experiment.id} {experiment.state})" if experiment else ""
    return f"A/B: A {100 - b}% · B {b}%{running}"
