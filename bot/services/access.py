"""Resolves a Slack user's groups (cached by the directory) and applies the pure policy."""

from __future__ import annotations

import asyncio

import structlog

from bot.config.settings import Settings
from bot.errors import NotAllowed
from bot.policy import Action, Actor, Decision, decide, groups_that_matter
from bot.ports import Directory

log = structlog.get_logger(__name__)


class Access:
    def __init__(self, settings: Settings, directory: Directory) -> None:
        self.settings = settings
        self.directory = directory
        self.groups = groups_that_matter(settings)

    async def actor(self, user: str) -> Actor:
        """The user with every configured group they belong to; an unreachable group counts as
        not a member (deny, never allow, on failure)."""
        ordered = sorted(self.groups)
        results = await asyncio.gather(
            *(self.directory.group_members(g) for g in ordered), return_exceptions=True
        )
        member_of = set()
        for group, members in zip(ordered, results, strict=True):
            if isinstance(members, BaseException):
                log.warning("group_lookup_failed", group=group, error=type(members).__name__)
            elif user in members:
                member_of.add(group)
        return Actor(user=user, groups=frozenset(member_of))

    async def check(
        self, user: str, action: Action, model: str | None, env: str | None = None
    ) -> Decision:
        """Raise NotAllowed (naming the role needed) unless ``user`` may do ``action``."""
        decision = decide(self.settings, await self.actor(user), action, model, env)
        log.info(
            "policy_decision",
            user=user,
            action=str(action),
            scope=decision.scope,
            allowed=decision.allowed,
        )
        if not decision.allowed:
            raise NotAllowed(
                f"<@{user}> {decision.reason}. Ask an admin for the role if you need it."
            )
        return decision
