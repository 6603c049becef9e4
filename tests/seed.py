"""Many runs and deploys written straight into a store, for the scale test and bench/scale.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.store import Store
from bot.store.schema import approval_votes, deployments, runs

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
USERS = ("U0BOB", "U0CAROL", "U0EVE")
CHUNK = 2_000


def run_row(i: int, model: str, state: str, backend: str) -> dict[str, Any]:
    return {
        "model": model,
        "backend": backend,
        "state": state,
        "requester": USERS[i % len(USERS)],
        "ref": f"feature/{i}",
        "sha": f"{i:040x}",
        "dataset": "v7",
        "gpus": 0,
        "params": {"lr": "0.01"},
        "project": "ml/fraud",
        "created_at": AT + timedelta(seconds=i),
        "detail": "",
    }


def deploy_row(i: int, model: str, env: str, run_id: int) -> dict[str, Any]:
    return {
        "model": model,
        "env": env,
        "kind": "deploy",
        "state": "succeeded",
        "requester": "U0ALICE",
        "created_at": AT + timedelta(seconds=i),
        "image_tag": f"{i:08x}",
        "digest": f"sha256:{i:064x}",
        "run_id": run_id,
        "revision": i + 1,
        "detail": "",
    }


async def seed(
    store: Store,
    *,
    active: int,
    finished: int = 0,
    deploys: int = 0,
    model: str = "fraud",
    env: str = "prod",
    backend: str = "kubernetes",
) -> None:
    """``active`` queued/running runs of ``model``, ``finished`` succeeded ones, and
    ``deploys`` succeeded deploys to ``model``/``env`` (each with a run and two approvals).

    Active runs default to the Kubernetes backend with no Job, so the sandbox's GitLab poller
    has nothing to poll: what is measured is the command, not the poller."""
    rows = [run_row(i, model, "running" if i % 2 else "queued", backend) for i in range(active)] + [
        run_row(active + i, model, "succeeded", "gitlab") for i in range(finished)
    ]
    async with store.db.write() as conn:
        for start in range(0, len(rows), CHUNK):
            await conn.execute(runs.insert(), rows[start : start + CHUNK])
        first = int(await conn.scalar(runs.select().with_only_columns(runs.c.id).limit(1)) or 1)
        made = [deploy_row(i, model, env, first + i % max(1, len(rows))) for i in range(deploys)]
        for start in range(0, len(made), CHUNK):
            await conn.execute(deployments.insert(), made[start : start + CHUNK])
        ids = (await conn.execute(deployments.select().with_only_columns(deployments.c.id))).all()
        votes = [
            {"deploy_id": r.id, "user": u, "approve": True, "via": "button", "at": AT}
            for r in ids
            for u in ("U0BOB", "U0CAROL")
        ]
        for start in range(0, len(votes), CHUNK):
            await conn.execute(approval_votes.insert(), votes[start : start + CHUNK])
