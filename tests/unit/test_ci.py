"""CI results, the pure parts: routing rules, payload reading, merging events, card views."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config.loading import settings_from_data
from bot.config.webhooks import EventKind, Route, RouteFacts
from bot.domain.ci import CiCard, Pipeline, merge
from bot.errors import ConfigError
from bot.sandbox.gitlab.hooks import job_hook, pipeline_hook, pipeline_story
from bot.services.ci.events import Unreadable, event_kind, parse, tail
from bot.views.ci import ci_card, duration, escape, job_failure

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gitlab"


def body(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def facts(**overrides: Any) -> RouteFacts:
    values: dict[str, Any] = {
        "kind": EventKind.PIPELINE,
        "status": "failed",
        "project": "ml/fraud",
        "ref": "main",
        "default_branch": "main",
        "source": "push",
    }
    return RouteFacts(**(values | overrides))


def test_routes_match_project_globs_default_branch_statuses_and_sources() -> None:
    alerts = Route(ref="$default", statuses=["failed"], channel="#ml-alerts")
    assert alerts.matches(facts())
    assert not alerts.matches(facts(ref="feature/x"))
    assert not alerts.matches(facts(status="success"))
    assert not alerts.matches(facts(default_branch="master"))
    reviews = Route(project="ml/*", sources=["merge_request_event"], channel="#ml-fraud")
    assert reviews.matches(facts(source="merge_request_event", ref="feature/x"))
    assert not reviews.matches(facts(project="web/shop", source="merge_request_event"))
    assert not reviews.matches(facts(kind=EventKind.JOB, source="merge_request_event"))


def test_webhook_settings_report_bad_rules_with_their_key_paths() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_data(
            {
                "webhooks": {
                    "secret": ["not", "a", "string"],
                    "routes": [
                        {"channel": "#ci", "statuses": ["faild"]},
                        {"channel": "#ci", "kinds": ["push"], "branch": "main"},
                    ],
                }
            }
        )
    issues = caught.value.issues
    assert "webhooks.secret: must be a string, got (hidden)" in issues
    assert any(
        i.startswith("webhooks.routes[0].statuses: Value error, unknown status 'faild'")
        for i in issues
    )
    assert any(
        i.startswith("webhooks.routes[1].kinds[0]: must be one of pipeline, job") for i in issues
    )
    assert any(
        i.startswith("webhooks.routes[1].branch: unknown key; valid keys here:") for i in issues
    )


def test_documented_payloads_are_read() -> None:
    pipeline = parse(EventKind.PIPELINE, body("pipeline_mr_failed.json")).card
    assert isinstance(pipeline, Pipeline)
    assert (pipeline.project, pipeline.id, pipeline.status) == ("ml/fraud", 88240, "failed")
    assert pipeline.merge_request is not None and pipeline.merge_request.iid == 17
    assert pipeline.jobs[550202].failure_reason == "script_failure"
    job = parse(EventKind.JOB, body("job_failed.json"))
    assert job.routes == ((EventKind.JOB, "failed"), (EventKind.PIPELINE, "running"))
    assert event_kind("Job Hook", {}) == EventKind.JOB
    assert event_kind(None, body("merge_request_open.json")) == EventKind.MERGE_REQUEST
    assert event_kind("Push Hook", body("push.json")) is None


def test_payloads_missing_what_the_bot_needs_are_unreadable() -> None:
    with pytest.raises(Unreadable, match="project"):
        parse(EventKind.PIPELINE, {"object_kind": "pipeline", "object_attributes": {"id": 1}})
    broken = body("pipeline_success.json") | {"object_attributes": {"id": "x"}}
    with pytest.raises(Unreadable, match=r"object_attributes\.id"):
        parse(EventKind.PIPELINE, broken)
    with pytest.raises(Unreadable):
        parse(EventKind.JOB, body("job_failed.json") | {"builds": 3, "build_id": None})


def replay(order: list[int], story: list[Any]) -> CiCard:
    card: CiCard | None = None
    for index in order:
        delivery = story[index]
        kind = EventKind.JOB if delivery.event == "Job Hook" else EventKind.PIPELINE
        card = merge(card, parse(kind, delivery.body).card)
    assert card is not None
    return card


STORY = pipeline_story("ml/fraud", 7, fail="lint")


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(len(STORY))))
def test_events_in_any_order_end_in_the_same_card(order: list[int]) -> None:
    final = replay(order, STORY)
    assert isinstance(final, Pipeline)
    assert final.status == "failed"
    assert {j.name: j.status for j in final.jobs.values()} == {
        "build-image": "success",
        "unit": "success",
        "lint": "failed",
        "train-smoke": "success",
        "evaluate": "success",
    }
    assert final.stages == ["build", "test", "evaluate"]


def test_a_retried_job_reopens_a_finished_pipeline() -> None:
    failed = pipeline_hook("ml/fraud", 9, "failed", {91: ("unit", "test", "failed")})
    retry = job_hook("ml/fraud", 9, 92, ("unit", "test", "running"), "running")
    stale = job_hook("ml/fraud", 9, 91, ("unit", "test", "running"), "running")
    card = merge(parse(EventKind.PIPELINE, failed.body).card, parse(EventKind.JOB, stale.body).card)
    assert isinstance(card, Pipeline) and card.status == "failed"  # a late event changes nothing
    card = merge(card, parse(EventKind.JOB, retry.body).card)
    assert isinstance(card, Pipeline) and card.status == "running"
    assert [j.id for j in card.latest_jobs()] == [92]


def test_the_pipeline_card_shows_stages_commit_author_mr_and_duration() -> None:
    card = parse(EventKind.PIPELINE, body("pipeline_mr_failed.json")).card
    message = ci_card(card)
    text = json.dumps(message.blocks)
    assert message.text == "Pipeline #88240 failed: ml/fraud feature/lr-schedule"
    for part in (":white_check_mark: build", ":x: test", "Bob Nguyen", "!17 Try a cosine"):
        assert part in text
    assert (
        "took 4m 9s" in text
        and "Failed: <https://gitlab.example.com/ml/fraud/-/jobs/550202|unit>" in text
    )


def test_views_escape_markup_and_keep_the_end_of_a_trace() -> None:
    assert escape("a <b> & c") == "a &lt;b&gt; &amp; c"
    assert duration(3723) == "1h 2m 3s" and duration(0) == "0s" and duration(None) is None
    trace = tail("\x1b[31mred\x1b[0m\n" + "\n".join(f"line {n}" for n in range(100)))
    assert trace is not None and trace.splitlines() == [f"line {n}" for n in range(70, 100)]
    pipeline = parse(EventKind.PIPELINE, body("pipeline_mr_failed.json")).card
    assert isinstance(pipeline, Pipeline)
    reply = job_failure(pipeline.jobs[550202], "x ```y``` <z>")
    assert "```x \u02cb\u02cb\u02cby\u02cb\u02cb\u02cb &lt;z&gt;```" in json.dumps(
        reply.blocks, ensure_ascii=False
    )
