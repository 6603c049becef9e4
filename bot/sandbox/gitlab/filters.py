"""The filters and order of GitLab's "list project pipelines" (``GET /projects/:id/pipelines``).

As GitLab's PipelinesFinder applies them: ``scope``, ``status``, ``ref``, ``sha``, ``source``,
``updated_after``/``updated_before`` and ``created_after``/``created_before`` (strictly after
or before, ISO 8601), then ``order_by`` (id, status, ref, updated_at, user_id) and ``sort``
(desc by default). A bad value is GitLab's 400 ``{"error": "<param> does not have a valid
value"}`` (or ``is invalid`` for a date).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.sandbox.gitlab.state import ACTIVE, FINAL, ApiError, Pipeline

SCOPES: dict[str, Callable[[Pipeline], bool]] = {
    "running": lambda p: p.status == "running",
    "pending": lambda p: p.status == "pending",
    "finished": lambda p: p.status in FINAL,
    "branches": lambda p: p.ref not in p.project.tags,
    "tags": lambda p: p.ref in p.project.tags,
}
STATUSES = frozenset({*ACTIVE, *FINAL, "manual", "scheduled", "preparing", "waiting_for_resource"})
ORDERS: dict[str, Callable[[Pipeline], Any]] = {
    "id": lambda p: p.id,
    "status": lambda p: (p.status, p.id),
    "ref": lambda p: (p.ref, p.id),
    "updated_at": lambda p: (p.updated_at, p.id),
    "user_id": lambda p: p.id,  # one user in the stand-in
}


def matches(pipeline: Pipeline, args: dict[str, Any]) -> bool:
    """Whether ``pipeline`` passes every filter given in ``args``."""
    checks: list[bool] = []
    if "scope" in args:
        checks.append(_choice(args, "scope", SCOPES)(pipeline))
    if "status" in args:
        checks.append(pipeline.status == _valid(args, "status", STATUSES))
    for key in ("ref", "sha", "source"):
        if key in args:
            checks.append(getattr(pipeline, key) == str(args[key]))
    for key, stamp, after in (
        ("updated_after", pipeline.updated_at, True),
        ("updated_before", pipeline.updated_at, False),
        ("created_after", pipeline.created_at, True),
        ("created_before", pipeline.created_at, False),
    ):
        if key in args:
            bound = _time(args, key)
            checks.append(stamp > bound if after else stamp < bound)
    return all(checks)


def ordered(pipelines: list[Pipeline], args: dict[str, Any]) -> list[Pipeline]:
    key = _choice(args, "order_by", ORDERS) if "order_by" in args else ORDERS["id"]
    sort = _valid(args, "sort", {"asc", "desc"}) if "sort" in args else "desc"
    return sorted(pipelines, key=key, reverse=sort == "desc")


def _valid(args: dict[str, Any], key: str, allowed: Any) -> str:
    value = str(args[key])
    if value not in allowed:
        raise ApiError(400, f"{key} does not have a valid value", key="error")
    return value


def _choice(args: dict[str, Any], key: str, table: dict[str, Any]) -> Any:
    return table[_valid(args, key, table)]


def _time(args: dict[str, Any], key: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(args[key]).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"{key} is invalid", key="error") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
