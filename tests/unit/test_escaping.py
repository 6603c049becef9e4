"""Every view renders user-supplied strings through ``bot.views.blocks.escape``: with a mention,
`&`, `*_~` and backticks in every free-text field, no card pings anyone, no `&` is left raw, and
no formatting marker or code fence comes from the input (the marker counts outside code equal
those of the same card rendered with harmless text)."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest

from bot.domain.ab import AbChange, AbState, ChangeState, Experiment, GuardReading
from bot.domain.accuracy import Champion, Verdict
from bot.domain.ci import Deployment as CiDeployment
from bot.domain.ci import Job, MergeRequest, MergeRequestRef, Pipeline
from bot.domain.deploys import Deployment, DeployState, Freeze, Lock
from bot.domain.paging import Page
from bot.domain.runs import Run, RunState
from bot.ports import NodeGpus, PendingGpuJob, ServiceState, Split
from bot.views import ab, blocks, ci, deploys, locks, replies, runs
from bot.views.blocks import Message, escape

HOSTILE = "<!channel> <@U123> <https://x.example|y> a&b *bold* _it_ ~st~ `code` ```block```"
PLAIN = "plain text"
AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
MODULES: list[ModuleType] = [ab, ci, deploys, locks, replies, runs]


def run(t: str) -> Run:
    verdict = Verdict(False, [f"{t} is missing"], Champion(f"run #1 ({t})", {"acc": 0.9}, t))
    return Run(
        1, "fraud", "gitlab", RunState.SUCCEEDED, "U0ALICE", t, AT, sha=t, dataset=t,
        params={"lr": t}, pipeline_id=None, job_name=t, namespace=t, stage=t, detail=t,
        metrics={t: 0.9}, test_set=t, verdict=verdict.to_json(),
    )  # fmt: skip


def deployment(t: str, state: DeployState = DeployState.FAILED) -> Deployment:
    return Deployment(
        1, "fraud", "prod", "deploy", state, "U0ALICE", AT, t, t, run_id=1, ref=t,
        force_reason=t, expires_at=AT, detail=t, approvers=("U0BOB",), rejecters=("U0CAROL",),
    )  # fmt: skip


def experiment(t: str) -> Experiment:
    reading = GuardReading(t, "b_minus_a", None, None, None, note=t)
    return Experiment(
        1, "fraud", "prod", "prod-b", AbState.FAILED, "U0ALICE", AT, image_a=t, image_b=t,
        weight_a=90, weight_b=10, readings=[reading], checked_at=AT, guard_error=t, detail=t,
    )  # fmt: skip


def changes(t: str) -> list[AbChange]:
    return [
        AbChange(1, 1, AT, "U0ALICE", "start", detail=t),
        AbChange(2, 1, AT, t, "set", ChangeState.FAILED, 10, 60, detail=t),
        AbChange(3, 1, AT, "U0ALICE", "set", ChangeState.AWAITING_APPROVAL, 10, 60, AT),
    ]


def service(t: str) -> ServiceState:
    return ServiceState("c", t, "arn", 3, (t,), "COMPLETED", 1, 1, 1)


class Status:
    def __init__(self, t: str, svc: ServiceState | None) -> None:
        self.env, self.service, self.problem, self.split = "prod", svc, t, "A/B: A 90% · B 10%"
        self.lock = Lock("fraud", "prod", "U0ALICE", t, AT)


def job(t: str) -> Job:
    return Job(id=7, name=t, stage=t, status="failed", failure_reason=t, url="https://g/j/7")


def pipeline(t: str) -> Pipeline:
    return Pipeline(
        project=t, id=5, ref=t, sha="0123456789abcdef", status="failed", source=t, stages=[t],
        jobs={7: job(t)}, commit_title=t, author=t, user=t, url="https://g/p/5",
        merge_request=MergeRequestRef(iid=3, title=t, url="https://g/mr/3"),
    )  # fmt: skip


def merge_request(t: str) -> MergeRequest:
    return MergeRequest(
        project=t, iid=3, title=t, source_branch=t, target_branch=t, author=t, merge_status=t
    )


def ci_deployment(t: str) -> CiDeployment:
    return CiDeployment(
        project=t, id=9, status="success", environment=t, short_sha="01234567", commit_title=t,
        user=t,
    )  # fmt: skip


GUARD = ab.Guarding(interval=60, breaches=3)
CASES: dict[str, Callable[[str], list[Message]]] = {
    "ab_card": lambda t: [
        ab.ab_card(experiment(t), (run(t), run(t)), changes(t), GUARD, ab.Prompt(1, "ok", "no")),
        ab.ab_card(
            replace(experiment(t), state=AbState.RUNNING),
            (None, None),
            changes(t),
            GUARD,
            ab.Prompt(1, "ok", "no"),
        ),
    ],
    "ab_status_reply": lambda t: [
        ab.ab_status_reply(
            ab.AbReport(
                "fraud", "prod", "prod-b", Split(90, 10), service(t), None, experiment(t), (t,)
            ),
            GUARD,
        )
    ],
    "pipeline_card": lambda t: [ci.pipeline_card(pipeline(t))],
    "job_failure": lambda t: [ci.job_failure(job(t), t), ci.job_failure(job(t), None)],
    "merge_request_card": lambda t: [ci.merge_request_card(merge_request(t))],
    "deployment_card": lambda t: [ci.deployment_card(ci_deployment(t))],
    "ci_card": lambda t: [ci.ci_card(pipeline(t)), ci.ci_card(merge_request(t))],
    "deploy_card": lambda t: [
        deploys.deploy_card(deployment(t, state), run(t), prompt=deploys.Prompt(2, "ok", "no"))
        for state in DeployState
    ],
    "full_diff_message": lambda t: [deploys.full_diff_message(t)],
    "history_reply": lambda t: [
        deploys.history_reply("fraud", "prod", Page([(deployment(t), run(t))], 1))
    ],
    "status_reply": lambda t: [
        deploys.status_reply("fraud", [Status(t, service(t)), Status(t, None)], None),
        locks.status_reply(
            "fraud", ["prod", "stg"], [Lock("fraud", "prod", t, t, AT)], Freeze("U0EVE", t, AT)
        ),
    ],
    "output_message": lambda t: [deploys.output_message([t, t])],
    "lock_card": lambda t: [locks.lock_card(Lock("fraud", "prod", "U0ALICE", t, AT))],
    "unlocked_card": lambda t: [locks.unlocked_card(Lock("fraud", "prod", t, t, AT), "U0BOB")],
    "freeze_card": lambda t: [locks.freeze_card(Freeze("U0EVE", t, AT))],
    "unfrozen_card": lambda t: [locks.unfrozen_card(Freeze("U0EVE", t, AT), "U0EVE")],
    # replies take text the bot composed (mentions and code spans of its own); what they
    # quote from users is escaped where the text is made, as the services do
    "error_reply": lambda t: [replies.error_reply(None, "c1")],
    "info_reply": lambda t: [replies.info_reply(f"locked: {escape(t)}")],
    "run_card": lambda t: [
        runs.run_card(run(t), AT + timedelta(minutes=3), "stg"),
        runs.run_card(replace(run(t), state=RunState.RUNNING), AT),
    ],
    "run_list": lambda t: [runs.run_list(Page([run(t)], 1), Page([run(t)], 1))],
    "log_tail": lambda t: [runs.log_tail(t, t)],
    "gpu_report": lambda t: [runs.gpu_report([NodeGpus(t, 8, 2)], [PendingGpuJob(t, t, 1, t)])],
}


def builders() -> Iterator[str]:
    """Every public function in bot/views/ that returns a Message."""
    for module in MODULES:
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            public = fn.__module__ == module.__name__ and not name.startswith("_")
            if public and typing.get_type_hints(fn).get("return") is Message:
                yield name


def test_every_builder_has_a_case() -> None:
    assert set(builders()) <= set(CASES), set(builders()) - set(CASES)
    assert blocks.Message is Message


def mrkdwn(value: Any) -> Iterator[str]:
    """Every string Slack parses as mrkdwn in a message: its text and mrkdwn text objects."""
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
            yield value["text"]
        for item in value.values():
            yield from mrkdwn(item)
    elif isinstance(value, list):
        for item in value:
            yield from mrkdwn(item)


def texts(message: Message) -> list[str]:
    return [message.text, *mrkdwn(message.blocks)]


CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
NEUTRAL = re.compile("\u200d[*_~]\u200d")


def markers(text: str) -> dict[str, int]:
    """Formatting markers Slack could act on: outside code, not wrapped in joiners."""
    outside = NEUTRAL.sub("", CODE.sub("", text))
    return {ch: outside.count(ch) for ch in "*_~"} | {"`": text.count("`")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_text_neither_pings_nor_breaks_formatting(name: str) -> None:
    hostile, plain = CASES[name](HOSTILE), CASES[name](PLAIN)
    for bad, good in zip(hostile, plain, strict=True):
        for text, harmless in zip(texts(bad), texts(good), strict=True):
            assert "<@U123>" not in text and "<!channel" not in text, text
            assert re.findall(r"<!(?!date\^)", text) == [], text
            assert "<https://x.example" not in text, text
            assert re.findall(r"&(?!amp;|lt;|gt;)", text) == [], text
            assert markers(text) == markers(harmless), (text, harmless)


def test_escape_keeps_the_text_readable() -> None:
    assert escape("a <b> & c") == "a &lt;b&gt; &amp; c"
    assert escape("*x*") == "\u200d*\u200dx\u200d*\u200d"
    assert escape("`x`") == "\u02cbx\u02cb"
    assert escape("feature_x ~y", in_code=True) == "feature_x ~y"
    assert blocks.code("a`b") == "`a\u02cbb`" and blocks.code("") == '""'
    assert blocks.user("U0ALICE") == "<@U0ALICE>" and blocks.user("<!here>") == "&lt;!here&gt;"
