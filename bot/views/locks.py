"""Cards and replies about locks and the deploy freeze."""

from __future__ import annotations

from collections.abc import Sequence

from bot.domain.deploys import Freeze, Lock
from bot.views.actions import ActionId, EnvTarget
from bot.views.blocks import Message, actions, button, context, escape, section, user, when


def lock_card(lock: Lock) -> Message:
    title = f":lock: *{lock.model}/{lock.env}* is locked by {user(lock.holder)}"
    value = EnvTarget(model=lock.model, env=lock.env).model_dump()
    return Message(
        text=f"{lock.model}/{lock.env} locked by {user(lock.holder)}: {escape(lock.reason)}",
        blocks=[
            section(f"{title}\n>{escape(lock.reason)}"),
            context(
                f"since {when(lock.since)} · no deploy reaches {lock.env} until it is unlocked"
            ),
            actions(button("Unlock", ActionId.UNLOCK, value)),
        ],
    )


def unlocked_card(lock: Lock, by: str) -> Message:
    text = f":unlock: *{lock.model}/{lock.env}* unlocked by {user(by)}"
    return Message(
        text=f"{lock.model}/{lock.env} unlocked by {user(by)}",
        blocks=[
            section(text),
            context(
                f"was locked by {user(lock.holder)} since {when(lock.since)}: {escape(lock.reason)}"
            ),
        ],
    )


def freeze_card(freeze: Freeze) -> Message:
    return Message(
        text=f"Deploys are frozen by {user(freeze.holder)}: {escape(freeze.reason)}",
        blocks=[
            section(
                f":snowflake: *Deploys are frozen* by {user(freeze.holder)}\n"
                f">{escape(freeze.reason)}"
            ),
            context(f"since {when(freeze.since)} · `/deploy unfreeze` (admin) lifts it"),
        ],
    )


def unfrozen_card(freeze: Freeze, by: str) -> Message:
    return Message(
        text=f"Deploys are unfrozen by {user(by)}",
        blocks=[
            section(f":sunny: *Deploys are unfrozen* by {user(by)}"),
            context(
                f"frozen by {user(freeze.holder)} since {when(freeze.since)}: "
                f"{escape(freeze.reason)}"
            ),
        ],
    )


def lock_line(env: str, lock: Lock | None) -> str:
    if lock is None:
        return f"• *{env}*: open"
    return (
        f"• *{env}*: :lock: locked by {user(lock.holder)} since {when(lock.since)}: "
        f"{escape(lock.reason)}"
    )


def status_reply(
    model: str, envs: Sequence[str], locks: Sequence[Lock], freeze: Freeze | None
) -> Message:
    by_env = {lock.env: lock for lock in locks}
    lines = [lock_line(env, by_env.get(env)) for env in envs]
    header = f"*{model}*"
    if freeze is not None:
        header += f"\n:snowflake: deploys frozen by {user(freeze.holder)}: {escape(freeze.reason)}"
    body = "\n".join(lines) or "no environments configured"
    return Message(text=f"{model} status", blocks=[section(header), section(body)])
