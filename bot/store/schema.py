"""The current shape of every table, used by queries. Migrations create it; keep them in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in and out: timestamptz on PostgreSQL, naive UTC text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store: use UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type(*, nullable: bool = False) -> sa.types.TypeEngine[Any]:
    """JSON, stored as JSONB on PostgreSQL; in a ``nullable`` column None is SQL NULL (not
    the JSON text ``null``, which ``IS NULL`` does not match)."""
    return sa.JSON(none_as_null=nullable).with_variant(
        postgresql.JSONB(none_as_null=nullable), "postgresql"
    )


def bigint_pk() -> sa.types.TypeEngine[int]:
    """BIGINT ids, but INTEGER on SQLite so that the column aliases its rowid."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("claimed_at", UTCDateTime, nullable=False, index=True),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(255), nullable=False),
    sa.Column("target", sa.String(255), nullable=False),
    sa.Column("model", sa.String(255), nullable=True),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("correlation_id", sa.String(255), nullable=False),
    sa.Column("parameters", json_type(), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_audit_events_model_at", "model", "at"),
)

locks = sa.Table(
    "locks",
    metadata,
    sa.Column("model", sa.String(255), primary_key=True),
    sa.Column("env", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("since", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
)

freeze = sa.Table(
    "freeze",
    metadata,
    # A single-row table: the constant key makes a second freeze a primary-key conflict.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("since", UTCDateTime, nullable=False),
    sa.CheckConstraint("id = 1", name="ck_freeze_single_row"),
)

cards = sa.Table(
    "cards",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("ts", sa.String(64), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Each card's desired state (the Slack outbox): ``version`` counts what was asked for, ``synced``
# what Slack shows; ``dirty`` while they differ. ``parent`` names the card a thread reply hangs
# under; ``generation`` counts fresh posts of the key (a repost starts a new message); ``claims``
# counts sends begun since the last outcome (above 1: a send may have posted, look first).
card_states = sa.Table(
    "card_states",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("channel", sa.String(255), nullable=False),
    sa.Column("parent", sa.String(255), nullable=True),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("blocks", sa.Text, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("synced", sa.Integer, nullable=False),
    sa.Column("dirty", sa.Boolean, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("claims", sa.Integer, nullable=False),
    sa.Column("retry_at", UTCDateTime, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_card_states_dirty_retry_at", "dirty", "retry_at"),
)


def inbox_table(name: str, md: sa.MetaData) -> sa.Table:
    """An inbox: one row per delivery key, ``pending`` until its effect is out."""
    return sa.Table(
        name,
        md,
        sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("project", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("retry_at", UTCDateTime, nullable=True),
        sa.Column("done_at", UTCDateTime, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        # v12: a replica's claim on a pending row; others skip it until then (it renews it).
        sa.Column("claimed_until", UTCDateTime, nullable=True),
        sa.UniqueConstraint("key", name=f"uq_{name}_key"),
        sa.Index(f"ix_{name}_status_id", "status", "id"),
        sa.Index(f"ix_{name}_done_at", "done_at"),
    )


# The leader lease (v12): one row per name; ``term`` grows by one with every new holder, and
# writes made for a leader carry its term, refused once the term has moved on (fencing).
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("term", sa.BigInteger, nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

# The GitLab webhook inbox: one row per delivery key; the worker moves rows out of "pending".
inbox = inbox_table("inbox", metadata)

# Slack commands, clicks and reactions, recorded before the ack and processed from here.
interactions = inbox_table("interactions", metadata)

# What each CI card shows (a pipeline, merge request or deployment), merged from its events.
ci_state = sa.Table(
    "ci_state",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("state", json_type(), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False, index=True),
)

RUN_ACTIVE = sa.text("state IN ('queued', 'running')")
RUN_DONE = sa.text("state IN ('succeeded', 'failed', 'canceled')")
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("backend", sa.String(32), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),  # v7: partial indexes instead
    sa.Column("requester", sa.String(255), nullable=False),
    sa.Column("ref", sa.String(255), nullable=False),
    sa.Column("sha", sa.String(64), nullable=True),
    sa.Column("dataset", sa.String(255), nullable=True),
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("params", json_type(), nullable=False),
    sa.Column("project", sa.String(255), nullable=True),
    sa.Column("pipeline_id", sa.BigInteger, nullable=True),
    sa.Column("job_name", sa.String(255), nullable=True),
    sa.Column("namespace", sa.String(255), nullable=True),
    sa.Column("web_url", sa.Text, nullable=True),
    sa.Column("stage", sa.String(255), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("metrics", json_type(nullable=True), nullable=True),
    sa.Column("test_set", sa.String(255), nullable=True),
    sa.Column("verdict", json_type(nullable=True), nullable=True),
    sa.Column("image", sa.Text, nullable=True),
    sa.Column("request", sa.String(255), nullable=True),  # v9: the Slack delivery's key
    sa.Index("ix_runs_model_id", "model", "id"),
    sa.Index("uq_runs_request", "request", unique=True),
    sa.Index("ix_runs_pipeline", "project", "pipeline_id"),
    # Partial indexes over the active and the finished runs (v7): listings, counts and GPU
    # sums read those entries only. Queries must spell the condition as a literal.
    sa.Index("ix_runs_active_id", "id", sqlite_where=RUN_ACTIVE, postgresql_where=RUN_ACTIVE),
    sa.Index(
        "ix_runs_active_model",
        "model",
        "id",
        "gpus",
        sqlite_where=RUN_ACTIVE,
        postgresql_where=RUN_ACTIVE,
    ),
    sa.Index(
        "ix_runs_active_requester",
        "requester",
        "id",
        "gpus",
        sqlite_where=RUN_ACTIVE,
        postgresql_where=RUN_ACTIVE,
    ),
    sa.Index("ix_runs_finished_id", "id", sqlite_where=RUN_DONE, postgresql_where=RUN_DONE),
    sa.Index(
        "ix_runs_finished_model", "model", "id", sqlite_where=RUN_DONE, postgresql_where=RUN_DONE
    ),
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("env", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("requester", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("image_tag", sa.String(255), nullable=False),
    sa.Column("digest", sa.String(100), nullable=False),
    sa.Column("run_id", sa.BigInteger, nullable=True),
    sa.Column("sha", sa.String(64), nullable=True),
    sa.Column("ref", sa.String(255), nullable=True),
    sa.Column("force_reason", sa.Text, nullable=True),
    sa.Column("revision", sa.Integer, nullable=True),
    sa.Column("previous_revision", sa.Integer, nullable=True),
    sa.Column("target_deploy", sa.BigInteger, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("diff", sa.Text, nullable=True),
    # v8: where a running deploy is and the ecspresso process group it may have running
    sa.Column("step", sa.String(16), nullable=True),
    sa.Column("ecspresso_runs", sa.Integer, nullable=False, server_default="0"),
    sa.Column("ecs_before", sa.Text, nullable=True),
    sa.Column("ecspresso_pgid", sa.Integer, nullable=True),
    sa.Column("ecspresso_fingerprint", sa.String(128), nullable=True),
    # v11: the Slack delivery that asked for it, and whether its reply was sent
    sa.Column("request", sa.String(255), nullable=True),
    sa.Column("replied", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),  # v11: the writer
    # v14: the replica running it and until when its lease on it lasts
    sa.Column("runner", sa.String(255), nullable=True),
    sa.Column("runner_until", UTCDateTime, nullable=True),
    sa.Index("ix_deployments_model_env_id", "model", "env", "id"),
    sa.Index("uq_deployments_request", "request", unique=True),
)

approval_votes = sa.Table(
    "approval_votes",
    metadata,
    sa.Column("deploy_id", sa.BigInteger, primary_key=True),
    sa.Column("user", sa.String(255), primary_key=True),
    sa.Column("approve", sa.Boolean, nullable=False),
    sa.Column("via", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

# A/B experiments (v5): one row per experiment; its history in ab_changes, votes on pending
# weight changes in ab_votes. At most one active experiment per model environment.
ACTIVE_STATES = sa.text("state IN ('deploying B', 'running', 'promoting')")
ab_experiments = sa.Table(
    "ab_experiments",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("env", sa.String(64), nullable=False),
    sa.Column("b_env", sa.String(64), nullable=False),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("requester", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("weight", sa.Integer, nullable=False),
    sa.Column("run_b", sa.BigInteger, nullable=True),
    sa.Column("image_b", sa.Text, nullable=False),
    sa.Column("digest_b", sa.String(100), nullable=False),
    sa.Column("run_a", sa.BigInteger, nullable=True),
    sa.Column("image_a", sa.Text, nullable=False),
    sa.Column("deploy_id", sa.BigInteger, nullable=True),
    sa.Column("weight_a", sa.Integer, nullable=True),
    sa.Column("weight_b", sa.Integer, nullable=True),
    sa.Column("breaches", sa.Integer, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("readings", json_type(), nullable=False),
    sa.Column("checked_at", UTCDateTime, nullable=True),
    sa.Column("guard_error", sa.Text, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_ab_experiments_model_env_id", "model", "env", "id"),
    sa.Index(
        "uq_ab_experiments_active",
        "model",
        "env",
        unique=True,
        sqlite_where=ACTIVE_STATES,
        postgresql_where=ACTIVE_STATES,
    ),
)

ab_changes = sa.Table(
    "ab_changes",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("experiment_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("weight_from", sa.Integer, nullable=True),
    sa.Column("weight_to", sa.Integer, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
)

ab_votes = sa.Table(
    "ab_votes",
    metadata,
    sa.Column("change_id", sa.BigInteger, primary_key=True),
    sa.Column("user", sa.String(255), primary_key=True),
    sa.Column("approve", sa.Boolean, nullable=False),
    sa.Column("via", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

# Model monitoring (v13): a run's reference profile (reference.json beside its metrics; the
# parse error instead when it was invalid), the last check per model and environment, and
# incidents; ``open_key`` (model/env/kind) is set while an incident is not resolved, so there
# is at most one open per kind.
run_references = sa.Table(
    "run_references",
    metadata,
    sa.Column("run_id", sa.BigInteger, primary_key=True),
    sa.Column("source", sa.String(1024), nullable=False),
    sa.Column("profile", json_type(nullable=True), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("stored_at", UTCDateTime, nullable=False),
)

monitor_checks = sa.Table(
    "monitor_checks",
    metadata,
    sa.Column("model", sa.String(255), primary_key=True),
    sa.Column("env", sa.String(64), primary_key=True),
    sa.Column("checked_at", UTCDateTime, nullable=False),
    sa.Column("deploy_id", sa.BigInteger, nullable=True),
    sa.Column("run_id", sa.BigInteger, nullable=True),
    sa.Column("result", json_type(), nullable=False),
)

monitor_incidents = sa.Table(
    "monitor_incidents",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("env", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(128), nullable=False),
    sa.Column("open_key", sa.String(512), nullable=True, unique=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("opened_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    sa.Column("deploy_id", sa.BigInteger, nullable=True),
    sa.Column("first", sa.Text, nullable=False),
    sa.Column("latest", sa.Text, nullable=False),
    sa.Column("checks", sa.Integer, nullable=False),
    sa.Column("acknowledged_by", sa.String(255), nullable=True),
    sa.Column("snoozed_until", UTCDateTime, nullable=True),
    sa.Index("ix_monitor_incidents_model_env_id", "model", "env", "id"),
)

monitor_history = sa.Table(
    "monitor_history",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(255), nullable=False),
    sa.Column("env", sa.String(64), nullable=False),
    sa.Column("checked_at", UTCDateTime, nullable=False),
    sa.Column("deploy_id", sa.BigInteger, nullable=True),
    sa.Column("run_id", sa.BigInteger, nullable=True),
    sa.Column("result", json_type(), nullable=False),
    sa.Index("ix_monitor_history_model_env_checked_at", "model", "env", "checked_at"),
)

monitor_digests = sa.Table(
    "monitor_digests",
    metadata,
    sa.Column("model", sa.String(255), primary_key=True),
    sa.Column("env", sa.String(64), primary_key=True),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=False),
    sa.Column("file_id", sa.String(64), nullable=True),
)
