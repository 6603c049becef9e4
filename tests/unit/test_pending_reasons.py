"""Why a Kubernetes run waits, folded from Jobs, Pods and FailedCreate events (no cluster), and
the pending timeout's setting. The cluster-side behaviour is in
tests/integration/test_kubernetes_pending.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.aio.client import ApiException, CoreV1Event, V1Job, V1Pod

from bot.config.loading import settings_from_data
from bot.config.training import KubernetesTraining, resync_seconds
from bot.domain.runs import gave_up_pending, span
from bot.errors import ConfigError, ExternalError
from integrations.kubernetes.status import refusal
from integrations.kubernetes.watch import SYNC, JobBook, Source, WatchTiming, _pump

NS = "ml-training"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
QUOTA_MESSAGE = (
    'Error creating: pods "train-1-x7k2p" is forbidden: exceeded quota: gpu-quota, '
    "requested: requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=2, "
    "limited: requests.nvidia.com/gpu=2"
)


def job(name: str = "train-1", uid: str = "uid-1", **meta: Any) -> Any:
    metadata = {"name": name, "namespace": NS, "uid": uid, "labels": {"app": "x"}, **meta}
    return V1Job.from_dict({"metadata": metadata, "status": {}})


def pod(job_name: str, at: datetime, **status: Any) -> Any:
    meta = {
        "name": f"{job_name}-{int(at.timestamp())}",
        "namespace": NS,
        "labels": {"job-name": job_name},
        "creationTimestamp": at.isoformat(),
    }
    return V1Pod.from_dict({"metadata": meta, "spec": {"containers": []}, "status": status})


def failed_create(job_name: str, at: datetime, uid: str = "uid-1", name: str = "e1") -> Any:
    """A FailedCreate event as the job controller's recorder writes it."""
    return CoreV1Event.from_dict(
        {
            "metadata": {"name": name, "namespace": NS},
            "involvedObject": {"kind": "Job", "name": job_name, "namespace": NS, "uid": uid},
            "reason": "FailedCreate",
            "type": "Warning",
            "message": QUOTA_MESSAGE,
            "count": 3,
            "firstTimestamp": (at - timedelta(seconds=30)).isoformat(),
            "lastTimestamp": at.isoformat(),
        }
    )


def ready_book(*jobs: Any) -> JobBook:
    book = JobBook(expected=frozenset({"job", "pod", "event"}))
    book.apply("pod", SYNC, [])
    book.apply("event", SYNC, [])
    book.apply("job", SYNC, list(jobs))
    return book


def test_a_quota_refusal_is_put_in_words_with_requested_used_and_hard() -> None:
    text = refusal(failed_create("train-1", T0)).text
    assert text == (
        "ResourceQuota gpu-quota is full: requested requests.nvidia.com/gpu=1, "
        "used requests.nvidia.com/gpu=2, hard requests.nvidia.com/gpu=2"
    )


def test_a_refusal_for_several_resources_lists_each() -> None:
    event = failed_create("train-1", T0)
    event.message = (
        'Error creating: pods "p" is forbidden: exceeded quota: team, requested: '
        "limits.memory=8Gi,requests.nvidia.com/gpu=1, used: limits.memory=60Gi,"
        "requests.nvidia.com/gpu=1, limited: limits.memory=64Gi,requests.nvidia.com/gpu=4"
    )
    assert refusal(event).text == (
        "ResourceQuota team is full: requested limits.memory=8Gi, requests.nvidia.com/gpu=1, "
        "used limits.memory=60Gi, requests.nvidia.com/gpu=1, "
        "hard limits.memory=64Gi, requests.nvidia.com/gpu=4"
    )


def test_another_refusal_is_quoted_as_the_api_server_said_it() -> None:
    event = failed_create("train-1", T0)
    event.message = 'Error creating: pods "p" is forbidden: error looking up service account x'
    assert refusal(event).text == (
        'FailedCreate: pods "p" is forbidden: error looking up service account x'
    )


def test_a_refusal_shows_until_a_pod_newer_than_it_exists() -> None:
    book = ready_book(job())
    [update] = book.apply("event", "ADDED", failed_create("train-1", T0))
    assert (update.phase, update.pod) == ("pending", None)
    assert update.reason.startswith("ResourceQuota gpu-quota is full")
    [update] = book.apply("pod", "ADDED", pod("train-1", T0 + timedelta(seconds=5)))
    assert (update.phase, update.reason) == ("pending", "")


def test_a_refusal_after_the_last_pod_wins_over_it() -> None:
    book = ready_book(job())
    book.apply("pod", "ADDED", pod("train-1", T0, phase="Failed"))
    [update] = book.apply("event", "MODIFIED", failed_create("train-1", T0 + timedelta(minutes=1)))
    assert update.phase == "pending" and "used requests.nvidia.com/gpu=2" in update.reason


def test_a_refusal_of_an_earlier_job_of_the_same_name_is_not_this_jobs() -> None:
    book = ready_book(job(uid="uid-2"))
    assert book.apply("event", "ADDED", failed_create("train-1", T0, uid="uid-1")) == []


def test_an_expired_refusal_event_is_forgotten() -> None:
    book = ready_book(job())
    book.apply("event", "ADDED", failed_create("train-1", T0))
    [update] = book.apply("event", "DELETED", failed_create("train-1", T0))
    assert update.reason == ""


def test_a_crash_loop_is_a_running_job_that_says_why() -> None:
    book = ready_book(job())
    message = "back-off 40s restarting failed container=train pod=train-1-abc_ml-training(u)"
    waiting = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
    status = {"name": "train", "image": "i", "imageID": "", "ready": False, "restartCount": 3}
    running = pod("train-1", T0, phase="Running", containerStatuses=[{**status, "state": waiting}])
    [update] = book.apply("pod", "ADDED", running)
    assert (update.phase, update.reason) == ("running", f"CrashLoopBackOff: {message}")


def test_the_resync_reports_pending_jobs_again_but_not_those_being_deleted() -> None:
    going = job("train-2", uid="uid-2", deletionTimestamp=T0.isoformat())
    book = ready_book(job(), going)
    assert [u.name for u in book.pending()] == ["train-1"]
    assert JobBook().pending() == []  # nothing before the first lists


def test_events_the_api_server_forbids_leave_the_watch_without_them() -> None:
    async def forbidden(*_: Any, **__: Any) -> Any:
        raise ApiException(status=403, reason="Forbidden")

    async def pumped(optional: bool) -> Any:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        source = Source(forbidden, field_selector="reason=FailedCreate", optional=optional)
        await _pump(queue, "event", source, NS, WatchTiming())
        return queue.get_nowait()

    assert asyncio.run(pumped(True)) == ("event", SYNC, [])
    assert isinstance(asyncio.run(pumped(False)), ExternalError)


# ---- the setting -------------------------------------------------------------------------------


def kubernetes_model(**kubernetes: object) -> dict[str, object]:
    training = {"backend": "kubernetes", "kubernetes": kubernetes}
    return {"models": {"fraud": {"channel": "#ml-fraud", "training": training}}}


def test_the_pending_timeout_defaults_to_half_an_hour_and_can_be_unset() -> None:
    assert KubernetesTraining().pending_timeout_seconds == 1800
    settings = settings_from_data(kubernetes_model(pending_timeout_seconds=None))
    assert settings.models["fraud"].training.kubernetes.pending_timeout_seconds is None


@pytest.mark.parametrize(
    ("value", "issue"),
    [
        (0, "models.fraud.training.kubernetes.pending_timeout_seconds: must be an integer >= 1"),
        ("soon", "models.fraud.training.kubernetes.pending_timeout_seconds: must be an integer"),
        (
            86400,
            "pending_timeout_seconds (86400) must be shorter than active_deadline_seconds "
            "(86400): a run that never started would be stopped by the deadline first",
        ),
    ],
)
def test_a_bad_pending_timeout_says_what_would_be_right(value: object, issue: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_data(kubernetes_model(pending_timeout_seconds=value))
    [line] = caught.value.issues
    assert line.startswith("models.fraud.training.kubernetes") and issue in line, line


def test_the_resync_keeps_up_with_the_shortest_pending_timeout() -> None:
    assert resync_seconds([]) == 30.0
    assert resync_seconds([KubernetesTraining()]) == 30.0
    short = KubernetesTraining(pending_timeout_seconds=20)
    assert resync_seconds([KubernetesTraining(), short]) == 5.0
    assert resync_seconds([KubernetesTraining(pending_timeout_seconds=2)]) == 1.0


def test_the_detail_of_a_run_that_never_started() -> None:
    assert span(1800) == "30m" and span(5400) == "1h 30m" and span(8) == "8s"
    assert gave_up_pending(1800, "ImagePullBackOff: x") == (
        "did not start within 30m: ImagePullBackOff: x"
    )
    assert gave_up_pending(60, "") == "did not start within 1m: Kubernetes gave no reason"
