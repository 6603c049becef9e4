"""The deploy card, its approval prompt, and /deploy replies: pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.domain.deploys import Deployment, DeployState, Lock
from bot.domain.paging import Page
from bot.domain.runs import Run
from bot.ports import ServiceState
from bot.views.actions import ActionId, DeployTarget
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

ICONS = {
    DeployState.AWAITING_APPROVAL: ":raised_hand:",
    DeployState.QUEUED: ":hourglass_flowing_sand:",
    DeployState.RUNNING: ":rocket:",
    DeployState.SUCCEEDED: ":white_check_mark:",
    DeployState.FAILED: ":red_circle:",
    DeployState.REJECTED: ":no_entry:",
    DeployState.EXPIRED: ":hourglass:",
}
DIFF_LINES = 15


@dataclass(frozen=True)
class Prompt:
    """What the approval prompt needs beyond the deployment."""

    needed: int
    approve_emoji: str
    reject_emoji: str


def short(digest: str) -> str:
    return digest[:19] + "…" if len(digest) > 20 else digest


def run_summary(run: Run | None) -> str:
    if run is None:
        return "no run"
    verdict = run.verdict or {}
    gate = "gate passed" if verdict.get("passed") else "gate not passed"
    metrics = ", ".join(f"{escape(k)} {v:.4f}" for k, v in sorted((run.metrics or {}).items())[:3])
    return f"run #{run.id} ({code(run.ref)}; {metrics or 'no metrics'}; {gate})"


def header(d: Deployment) -> str:
    what = "rollback" if d.kind == "rollback" else "deploy"
    return f"{ICONS[d.state]} *{d.model} → {d.env} · {what} #{d.id}* — {d.state}"


def facts(d: Deployment, run: Run | None) -> str:
    """Image, digest, run and requester; what is unknown is left out rather than shown empty
    (a rollback to what ran before the bot knows a task definition revision, not a tag)."""
    parts = []
    if d.image_tag.startswith("revision "):
        parts.append(f"task definition {escape(d.image_tag)}")
    elif d.image_tag:
        parts.append(f"image {code(d.image_tag)}")
    if d.digest:
        parts.append(f"digest {code(short(d.digest))}")
    parts += [run_summary(run), f"requested by {user(d.requester)}"]
    return " · ".join(parts)


def votes_line(d: Deployment, prompt: Prompt | None) -> str:
    needed = f"/{prompt.needed}" if prompt else ""
    line = f"approvals {len(d.approvers)}{needed}"
    if d.approvers:
        line += ": " + ", ".join(user(u) for u in d.approvers)
    if d.rejecters:
        line += " · rejected by " + ", ".join(user(u) for u in d.rejecters)
    return line


def outcome_line(d: Deployment) -> str | None:
    if d.state == DeployState.SUCCEEDED:
        return f":white_check_mark: revision {d.revision} verified on ECS"
    if d.state == DeployState.FAILED:
        return f":red_circle: *failed*: {escape(d.detail)} · {user(d.requester)}"
    if d.state == DeployState.REJECTED and d.rejecters:
        return "rejected by " + ", ".join(user(u) for u in d.rejecters)
    if d.state in (DeployState.REJECTED, DeployState.EXPIRED, DeployState.RUNNING):
        return escape(d.detail) or None
    return None


def prompt_blocks(d: Deployment, prompt: Prompt) -> list[Block]:
    value = DeployTarget(deploy=d.id).model_dump()
    expiry = f" · expires {when(d.expires_at)}" if d.expires_at else ""
    return [
        actions(
            button("Approve", ActionId.APPROVE, value, "primary"),
            button("Reject", ActionId.REJECT, value, "danger"),
        ),
        context(
            f"{prompt.needed} approval(s) from {d.env}'s approvers needed; reacting with "
            f":{prompt.approve_emoji}: counts as approve, :{prompt.reject_emoji}: as "
            f"reject{expiry}"
        ),
    ]


def diff_line(diff: str) -> str:
    """The card's diff line: a summary, "computing diff…" or "diff unavailable: <reason>"
    (plain text the bot wrote, escaped for mrkdwn all the same)."""
    plain = escape(diff)
    return f"*diff*: {plain[:2800]}"


def full_diff_message(diff: str) -> Message:
    """The scrubbed diff in the card's thread (environments with ``diff: full``)."""
    text = escape(diff, in_code=True)
    if len(text) > 2800:
        text = text[:2800] + "\n… (cut)"
    return Message(text="ecspresso diff", blocks=[section(f"*ecspresso diff*\n```{text}```")])


def diff_excerpt(diff: str) -> str:
    lines = diff.strip().splitlines()
    if not lines:
        return "no change"
    shown = "\n".join(lines[:DIFF_LINES])
    more = (
        f"\n… {len(lines) - DIFF_LINES} more lines in the thread" if len(lines) > DIFF_LINES else ""
    )
    return f"```{shown[:2500]}```{more}"


def deploy_card(
    d: Deployment, run: Run | None, *, prompt: Prompt | None = None, diff: str | None = None
) -> Message:
    blocks = [section(header(d)), context(facts(d, run))]
    if d.force_reason:
        blocks.append(section(f":warning: *forced* by an admin: {escape(d.force_reason)}"))
    if diff is not None:
        blocks.append(context(diff_line(diff)))
    if prompt is not None or d.approvers or d.rejecters:
        blocks.append(context(votes_line(d, prompt)))
    if d.state == DeployState.AWAITING_APPROVAL and prompt is not None:
        blocks += prompt_blocks(d, prompt)
    outcome = outcome_line(d)
    if outcome:
        blocks.append(section(outcome))
    return Message(text=f"{d.model} → {d.env} #{d.id}: {d.state}", blocks=blocks)


def history_line(d: Deployment, run: Run | None) -> str:
    approved = ", ".join(user(u) for u in d.approvers) or "no approvals"
    return (
        f"{ICONS[d.state]} *#{d.id}* {d.kind} {code(d.image_tag)} by {user(d.requester)} · "
        f"{when(d.created_at)} · {run_summary(run)} · {approved} · {d.state}"
    )


def history_reply(model: str, env: str, page: Page[tuple[Deployment, Run | None]]) -> Message:
    """One page of past deploys, newest first, saying how many it left out."""
    lines = [history_line(d, r) for d, r in page.items] or ["no deploys yet"]
    note = paging_note(page, "deploys", f"/deploy {model} history {env}")
    text = fitted(f"*{model}/{env}*", lines, note)
    return Message(text=f"{model}/{env} history", blocks=[section(text)])


class EnvStatus(Protocol):
    @property
    def env(self) -> str: ...

    @property
    def service(self) -> ServiceState | None: ...

    @property
    def lock(self) -> Lock | None: ...

    @property
    def problem(self) -> str: ...

    @property
    def split(self) -> str: ...


def env_status_line(s: EnvStatus) -> str:
    lock = f" · :lock: {user(s.lock.holder)}: {escape(s.lock.reason)}" if s.lock else ""
    lock += f" · {s.split}" if s.split else ""
    if s.service is None:
        return f"• *{s.env}*: {escape(s.problem) or 'no ECS service configured'}{lock}"
    svc = s.service
    moving = " · deployment in progress" if svc.deployments > 1 else ""
    images = ", ".join(code(i.rsplit("/", 1)[-1]) for i in svc.images)
    return (
        f"• *{s.env}*: revision {svc.revision} · {images} · {svc.running}/{svc.desired} "
        f"running · rollout {svc.rollout_state.lower()}{moving}{lock}"
    )


def status_reply(model: str, statuses: Sequence[EnvStatus], frozen: str | None) -> Message:
    head = f"*{model}*" + (f"\n:snowflake: deploys frozen {frozen}" if frozen else "")
    body = "\n".join(env_status_line(s) for s in statuses) or "no environments configured"
    return Message(text=f"{model} status", blocks=[section(head), section(body)])


def output_message(lines: Sequence[str]) -> Message:
    text = escape("\n".join(lines[-40:]), in_code=True) or "(no output yet)"
    return Message(text="ecspresso output", blocks=[section(f"*ecspresso*\n```{text[-2800:]}```")])
