"""/train with the GitLab backend, end to end: signed commands, the GitLab stand-in, one card."""

from __future__ import annotations

import json

import pytest

from bot.domain.runs import Run, RunState
from bot.sandbox.console import Console
from bot.sandbox.runner import Sandbox
from tests.helpers import eventually

FRAUD = "ml/fraud"


@pytest.fixture(autouse=True)
def manual_pipelines(sandbox: Sandbox) -> None:
    """Pipelines move only when a test says so."""
    sandbox.gitlab.auto_advance(None)


def replies_to(sandbox: Sandbox, user: str) -> list[str]:
    return [m.text for m in sandbox.slack.messages if m.ephemeral_to == user]


def card_text(sandbox: Sandbox, channel: str = "C0FRAUD") -> str:
    cards = [
        m
        for m in sandbox.slack.messages
        if m.channel == channel and not m.ephemeral_to and not m.thread_ts
    ]
    assert len(cards) == 1, [c.text for c in cards]
    return json.dumps(cards[0].blocks)


async def run_state(sandbox: Sandbox, run_id: int, state: RunState) -> None:
    """Wait until the run reached ``state`` and its card says so (the card follows the store)."""

    async def reached() -> bool:
        run = await sandbox.bot.store.runs.get(run_id)
        if run is None or run.state != state:
            return False
        await sandbox.bot.notifier.flush()
        return any(
            m.text == f"{run.model} run #{run_id}: {state}"
            for m in sandbox.slack.messages
            if not m.ephemeral_to
        )

    await eventually(reached, timeout=10)


async def test_a_run_goes_from_command_to_accuracy_on_one_card(
    console: Console, sandbox: Sandbox
) -> None:
    await console.execute("/train fraud ref=main dataset=v7 lr=0.01 epochs=3")
    assert "Started run #1 of *fraud*" in replies_to(sandbox, "U0ALICE")[-1]
    pipeline = sandbox.gitlab.pipelines(FRAUD)[0]
    assert pipeline.variables == {
        "MLOPS_RUN_ID": "1",
        "MLOPS_MODEL": "fraud",
        "MLOPS_DATASET": "v7",
        "MLOPS_GPUS": "1",
        "MLOPS_REQUESTER": "U0ALICE",
        "HP_LR": "0.01",
        "HP_EPOCHS": "3",
    }

    sandbox.gitlab.advance(FRAUD, pipeline.id)
    sandbox.gitlab.advance(FRAUD, pipeline.id)
    await run_state(sandbox, 1, RunState.RUNNING)
    assert "prepare/prepare" in card_text(sandbox) or "train/train" in card_text(sandbox)

    sandbox.gitlab.complete(FRAUD, pipeline.id)
    await run_state(sandbox, 1, RunState.SUCCEEDED)
    text = card_text(sandbox)
    assert "succeeded" in text and "0.9312" in text and "0.9210" in text and "+0.0102" in text
    assert "gate passed" in text
    run = await sandbox.bot.store.runs.get(1)
    assert run is not None and run.sha == pipeline.sha and run.dataset == "v7"
    assert run.metrics == {"accuracy": 0.9312, "f1": 0.8875}
    assert run.test_set == "fraud-test-v3" and run.params == {"lr": "0.01", "epochs": "3"}


async def test_a_failure_posts_the_failing_job_and_its_log_tail(
    console: Console, sandbox: Sandbox
) -> None:
    await console.execute("/train fraud")
    pipeline = sandbox.gitlab.pipelines(FRAUD)[0]
    trace = "\n".join(f"line {n}" for n in range(1, 101)) + "\nCUDA out of memory"
    sandbox.gitlab.fail_job(FRAUD, pipeline.id, "train", trace)
    sandbox.gitlab.complete(FRAUD, pipeline.id)
    await run_state(sandbox, 1, RunState.FAILED)
    assert "job train failed" in card_text(sandbox)
    await sandbox.slack.wait_for(lambda: any(m.thread_ts for m in sandbox.slack.messages))
    thread = [m for m in sandbox.slack.messages if m.thread_ts]
    assert len(thread) == 1
    log = json.dumps(thread[0].blocks)
    assert "failed job train" in log and "CUDA out of memory" in log
    assert "line 72" in log and "line 70\\n" not in log


async def test_missing_or_odd_metrics_never_crash(console: Console, sandbox: Sandbox) -> None:
    await console.execute("/train fraud")
    await console.execute("/train fraud")
    first, second = sandbox.gitlab.pipelines(FRAUD)
    sandbox.gitlab.attach_artifact(FRAUD, first.id, "evaluate", "metrics.json", b"{oops")
    other_set = {"metrics": {"accuracy": 0.95}, "test_set": "fraud-test-v4"}
    sandbox.gitlab.attach_artifact(
        FRAUD, second.id, "evaluate", "metrics.json", json.dumps(other_set).encode()
    )
    sandbox.gitlab.complete(FRAUD, first.id)
    sandbox.gitlab.complete(FRAUD, second.id)
    await run_state(sandbox, 1, RunState.SUCCEEDED)
    await run_state(sandbox, 2, RunState.SUCCEEDED)
    texts = [json.dumps(m.blocks) for m in sandbox.slack.messages if m.channel == "C0FRAUD"]
    assert any("no metrics" in t and "not valid JSON" in t for t in texts)
    assert any("fraud-test-v4 differs from the champion" in t and "gate failed" in t for t in texts)


async def test_a_run_whose_metrics_cannot_be_read_ends_with_the_reason_not_half_judged(
    console: Console, sandbox: Sandbox
) -> None:
    await console.execute("/train fraud")
    (pipeline,) = sandbox.gitlab.pipelines(FRAUD)
    sandbox.gitlab.fail(r"/jobs/\d+/artifacts/", status=500, times=1000)
    sandbox.gitlab.complete(FRAUD, pipeline.id)
    seen: list[Run] = []

    async def finished() -> bool:
        run = await sandbox.bot.store.runs.get(1)
        assert run is not None
        seen.append(run)
        return run.state.finished

    await eventually(finished, timeout=30)
    ended = seen[-1]
    # the final state and the verdict land in one update: never succeeded and unjudged
    assert ended.state == RunState.SUCCEEDED and ended.verdict is not None
    assert not ended.verdict["passed"] and ended.metrics is None
    assert "the metrics could not be read" in ended.verdict["reasons"][0]
    await run_state(sandbox, 1, RunState.SUCCEEDED)
    assert "the metrics could not be read" in card_text(sandbox)  # the card says why


async def test_bad_requests_start_nothing(console: Console, sandbox: Sandbox) -> None:
    await console.execute("/train fraud gpus=5")
    await console.execute("/train fraud dropout=0.5")
    await console.execute("/train fraud ref=feature..x")
    await console.execute("/train fraud lr=1;rm")
    replies = replies_to(sandbox, "U0ALICE")
    assert "gpus=5 is above fraud's maximum of 4" in replies[0]
    assert "`dropout` is not a parameter of fraud" in replies[1] and "`lr`" in replies[1]
    assert "feature..x" in replies[2]
    assert "lr" in replies[3]
    assert sandbox.gitlab.pipelines(FRAUD) == []
    assert await sandbox.bot.store.runs.recent() == []


async def test_gpu_quota_shows_current_usage(console: Console, sandbox: Sandbox) -> None:
    await console.execute("/train fraud gpus=4")
    await console.execute("/train churn gpus=2")
    await console.execute("/train fraud gpus=1")
    refusal = replies_to(sandbox, "U0ALICE")[-1]
    assert "already uses 6 of 6 GPUs" in refusal and "#1 (4)" in refusal and "#2 (2)" in refusal
    assert len(sandbox.gitlab.pipelines()) == 2


async def test_cancel_status_logs_and_list(console: Console, sandbox: Sandbox) -> None:
    await console.execute("/train fraud")
    pipeline = sandbox.gitlab.pipelines(FRAUD)[0]
    sandbox.gitlab.set_trace(FRAUD, pipeline.id, "prepare", "downloading v7\n42% done")
    sandbox.gitlab.advance(FRAUD, pipeline.id)
    sandbox.gitlab.advance(FRAUD, pipeline.id)
    await console.execute("as @dave")
    await console.execute("/train fraud logs 1")
    assert "42% done" in json.dumps(sandbox.slack.messages[-1].blocks)
    await console.execute("/train list")
    assert "#1" in json.dumps(sandbox.slack.messages[-1].blocks)
    await console.execute("/train fraud cancel 1")
    assert "needs the trainer role on fraud" in replies_to(sandbox, "U0DAVE")[-1]
    await console.execute("as @alice")
    await console.execute("/train fraud cancel 1")
    assert "is canceled" in replies_to(sandbox, "U0ALICE")[-1]
    assert sandbox.gitlab.pipeline(FRAUD, pipeline.id).status == "canceled"
    await console.execute("/train fraud status 1")
    assert "canceled by" in json.dumps(sandbox.slack.messages[-1].blocks)
    await console.execute("/train fraud status 9")
    assert "fraud has no run #9" in replies_to(sandbox, "U0ALICE")[-1]


async def test_a_restart_resumes_active_runs_on_the_same_card(
    console: Console, sandbox: Sandbox
) -> None:
    await console.execute("/train fraud")
    pipeline = sandbox.gitlab.pipelines(FRAUD)[0]
    sandbox.gitlab.advance(FRAUD, pipeline.id)
    sandbox.gitlab.advance(FRAUD, pipeline.id)
    await run_state(sandbox, 1, RunState.RUNNING)
    await sandbox.restart()
    sandbox.gitlab.complete(FRAUD, pipeline.id)
    await run_state(sandbox, 1, RunState.SUCCEEDED)
    assert "gate passed" in card_text(sandbox)  # one card: the restarted bot edited it


async def test_a_project_refusing_variables_is_explained_not_echoed(
    console: Console, sandbox: Sandbox
) -> None:
    """GitLab.com's default for new namespaces: no pipeline variables for anyone."""
    sandbox.gitlab.restrict_variables(FRAUD, "no_one_allowed")
    await console.execute("/train fraud lr=0.01")
    reply = replies_to(sandbox, "U0ALICE")[-1]
    assert "ci_pipeline_variables_minimum_override_role: no_one_allowed" in reply
    assert "set it to maintainer" in reply and "Insufficient permissions" not in reply
    assert sandbox.gitlab.pipelines(FRAUD) == []
    await run_state(sandbox, 1, RunState.FAILED)
    run = await sandbox.bot.store.runs.get(1)
    assert run is not None and "ci_pipeline_variables_minimum_override_role" in run.detail
