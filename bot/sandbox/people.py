"""The sandbox workspace: its people, user groups and channels (ids match sample-config.yaml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    real_name: str


PEOPLE = (
    Person("U0ALICE", "alice", "Alice (trainer, deployer)"),
    Person("U0BOB", "bob", "Bob (approver)"),
    Person("U0CAROL", "carol", "Carol (approver)"),
    Person("U0DAVE", "dave", "Dave (viewer)"),
    Person("U0EVE", "eve", "Eve (admin)"),
)
GROUPS = {
    "S0APPROVERS": ["U0BOB", "U0CAROL"],
    "S0FRAUDOWNERS": ["U0ALICE", "U0BOB"],
    "S0CHURNOWNERS": ["U0ALICE"],
}
CHANNELS = {
    "C0FRAUD": "ml-fraud",
    "C0CHURN": "ml-churn",
    "C0SANDBOX": "sandbox",
    "C0CI": "ci",
    "C0ALERTS": "ml-alerts",
}
HOME_CHANNEL = "C0SANDBOX"
BOT_TOKEN = "xoxb-sandbox-token"  # noqa: S105 - the stand-in's own, not a real credential
SIGNING_SECRET = "sandbox-signing-secret"  # noqa: S105 - printed at start on purpose
WEBHOOK_SECRET = "sandbox-webhook-secret"  # noqa: S105 - matches sample-config.yaml


def by_name(name: str) -> Person | None:
    wanted = name.lstrip("@").lower()
    return next((p for p in PEOPLE if p.name == wanted), None)
