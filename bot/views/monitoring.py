"""Monitoring in Slack: the incident card and the `/deploy <model> health <env>` reply. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from bot.domain.deploys import Deployment
from bot.domain.monitoring.chart import DigestData
from bot.domain.monitoring.incidents import CheckResult, Finding, Incident, IncidentState, Status
from bot.views.actions import ActionId
from bot.views.blocks import Block, Message, actions, button, context, escape, section, when
from bot.views.runs import duration

STATUS_ICONS = {Status.OK: ":large_green_circle:", Status.BREACHED: ":red_circle:",
                Status.UNKNOWN: ":white_circle:"}  # fmt: skip
TITLES = {"latency": "latency", "5xx": "5xx rate", "drift": "drift", "accuracy": "accuracy"}


class IncidentTarget(BaseModel):
    """Button value naming one incident (acknowledge, snooze)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident: int = Field(ge=1)


class RollbackTarget(BaseModel):
    """Button value of "Roll back to deploy #N" on an incident card."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=64)
    env: str = Field(min_length=1, max_length=64)
    to: int = Field(ge=1)


@dataclass(frozen=True)
class IncidentContext:
    """What the card says around the incident: owners, the deploy live when it began and the
    one a rollback would restore."""

    owners: Sequence[str] = ()
    live: Deployment | None = None
    back_to: Deployment | None = None


def kind_title(kind: str) -> str:
    return TITLES.get(kind, kind.removeprefix("slo:"))


def mention(subject: str) -> str:
    return f"<!subteam^{subject}>" if subject.startswith("S") else f"<@{subject}>"


def headline(i: Incident) -> str:
    what = f"{i.model}/{i.env}: {kind_title(i.kind)}"
    if i.state == IncidentState.RESOLVED:
        return f":white_check_mark: {what} back within limits (incident #{i.id}, resolved)"
    return f":rotating_light: {what} breached (incident #{i.id})"


def live_line(i: Incident, live: Deployment | None) -> str:
    if live is None or live.id != i.deploy_id:
        return f"Live when it began: deploy #{i.deploy_id}" if i.deploy_id else "No deploy known"
    run = f" (run #{live.run_id})" if live.run_id else ""
    after = ""
    if live.finished_at is not None:
        since = duration((i.opened_at - live.finished_at).total_seconds())
        after = f", {since} after it was verified"
    image = escape(live.image_tag, in_code=True)
    return f"Live when it began: deploy #{live.id}{run} of `{image}`{after}"


def state_line(i: Incident, now: datetime) -> str:
    parts = [f"{i.checks} breaching check{'s' if i.checks != 1 else ''} since {when(i.opened_at)}"]
    if i.acknowledged_by:
        parts.append(f"acknowledged by <@{i.acknowledged_by}>")
    if i.snoozed(now) and i.snoozed_until is not None:
        parts.append(f"snoozed until {when(i.snoozed_until)}")
    if i.resolved_at is not None:
        parts.append(f"resolved {when(i.resolved_at)}")
    return "; ".join(parts)


def incident_buttons(i: Incident, back_to: Deployment | None) -> list[Block]:
    if not i.active:
        return []
    target = {"incident": i.id}
    found: list[Block] = []
    if back_to is not None:
        value = {"model": i.model, "env": i.env, "to": back_to.id}
        label = f"Roll back to deploy #{back_to.id}"
        found.append(button(label, ActionId.INCIDENT_ROLLBACK, value, style="danger"))
    if i.state == IncidentState.OPEN:
        found.append(button("Acknowledge", ActionId.INCIDENT_ACKNOWLEDGE, target))
    found.append(button("Snooze 24h", ActionId.INCIDENT_SNOOZE, target))
    return [actions(*found)]


def incident_card(i: Incident, c: IncidentContext, now: datetime) -> Message:
    blocks = [
        section(f"*{headline(i)}*"),
        section(f"*Now:* {escape(i.latest)}\n*At first:* {escape(i.first)}"),
        context(f"{live_line(i, c.live)} · {state_line(i, now)}"),
    ]
    if c.owners and i.active:
        blocks.append(context("Owners: " + " ".join(mention(o) for o in c.owners)))
    blocks += incident_buttons(i, c.back_to)
    return Message(headline(i), blocks)


def finding_line(f: Finding) -> str:
    return f"{STATUS_ICONS[f.status]} *{escape(f.title)}*: {escape(f.text)}"


def health_reply(
    model: str, env: str, last: CheckResult | None, incidents: Sequence[Incident]
) -> Message:
    """`/deploy <model> health <env>`: as of the last check, and the open incidents."""
    title = f"*Health of {model}/{env}*"
    if last is None:
        text = f"{title}: not checked yet (monitoring runs every few minutes once configured)."
        return Message(text, [section(text)])
    deploy = f"deploy #{last.deploy_id}" if last.deploy_id else "no deploy known"
    blocks = [section(f"{title} as of {when(last.checked_at)} ({deploy})")]
    blocks.append(section("\n".join(finding_line(f) for f in last.findings) or "nothing checked"))
    if incidents:
        lines = [f"• #{i.id} {kind_title(i.kind)} ({i.state}) since {when(i.opened_at)}"
                 for i in incidents]  # fmt: skip
        blocks.append(section("*Open incidents*\n" + "\n".join(lines)))
    else:
        blocks.append(context("No open incidents."))
    return Message(f"Health of {model}/{env}", blocks)


def digest_summary(data: DigestData, checks: int, open_incidents: int) -> str:
    """The digest's comment beside its chart: checks, drift, accuracy, deploys, incidents."""
    lines = [f"*Daily digest of {data.model}/{data.env}* ({data.period}, {checks} checks)"]
    drifted = sorted(b.feature for b in data.drift if b.flagged)
    if not data.drift:
        lines.append("Drift: no check compared distributions")
    elif drifted:
        lines.append(f"Drift: {len(drifted)} of {len(data.drift)} drifted: {', '.join(drifted)}")
    else:
        lines.append(f"Drift: none of {len(data.drift)} profiles drifted")
    lines.append(accuracy_summary(data))
    marks = ", ".join(f"#{d.deploy_id}" for d in sorted(data.deploys, key=lambda d: d.at))
    lines.append(f"Deploys: {marks}" if marks else "Deploys: none")
    lines.append(f"Open incidents: {open_incidents}")
    return "\n".join(lines)


def accuracy_summary(data: DigestData) -> str:
    if not data.accuracy:
        return "Production accuracy: no labels in this period"
    last = max(data.accuracy, key=lambda p: p.at)
    bounds = ""
    if last.low is not None and last.high is not None:
        bounds = f" ({last.low:.3f}-{last.high:.3f})"
    against = f" vs {data.test_accuracy:.3f} on the test set" if data.test_accuracy else ""
    return f"Production accuracy: {last.accuracy:.3f}{bounds} on {last.labels:,} labels{against}"
