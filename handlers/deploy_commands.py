"""/deploy subcommands: each parsed intent goes to its service, the result to a view."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot import intents as i
from bot.domain.deploys import Deployment
from bot.services.monitoring.commands import MonitoringCommands
from bot.views import deploys as views
from bot.views.blocks import Message, escape, user
from bot.views.replies import info_reply
from handlers import ab_commands
from handlers.deps import Deps
from handlers.outcome import ReplyFirst, Result
from handlers.parsing import usage


async def dispatch(
    deps: Deps, actor: str, intent: i.DeployIntent, request: str | None = None
) -> Result:
    """``request``: the Slack delivery's key, so that a replayed /deploy opens nothing twice."""
    match intent:
        case i.Help():
            return info_reply(usage("deploy", intent.topic))
        case i.DeployStart():
            d = await deps.deploys.record(actor, intent, request)
            waiting = " It waits for approval." if d.state.value == "awaiting approval" else ""
            text = (
                f":rocket: Deploy #{d.id}: *{d.model}* → *{d.env}* "
                f"(`{d.image_tag}`); its card is in the model's channel.{waiting}"
            )
            return await reply_first(deps, d, text, lambda: deps.deploys.reopen(d))
        case i.DeployDiff():
            return info_reply(
                f"*{intent.model}/{intent.env}* would change:\n"
                + await deps.deploys.diff(actor, intent)
            )
        case i.DeployRollback():
            d = await deps.deploys.record_rollback(actor, intent, request)
            text = (
                f":rewind: Rollback #{d.id} of *{d.model}/{d.env}* to revision "
                f"{d.revision} is {d.state}."
            )
            return await reply_first(deps, d, text, lambda: deps.deploys.reopen_rollback(actor, d))
        case i.DeployHistory(model=model, env=env, page=page):
            rows = await deps.reports.history(actor, model, env, page)
            return views.history_reply(model, env, rows)
        case i.DeployStatus(model=model, env=env):
            reports = await deps.reports.status(actor, model, env)
            freeze = await deps.store.get_freeze()
            frozen = f"by {user(freeze.holder)}: {escape(freeze.reason)}" if freeze else None
            return views.status_reply(model, reports, frozen)
        case i.AbCommand():
            return await ab_commands.dispatch(deps, actor, intent, request)
        case i.DeployHealth(model=model, env=env):
            monitoring = MonitoringCommands(deps.settings, deps.store, deps.access, deps.chat)
            return await monitoring.health(actor, model, env)
    return await lock_commands(deps, actor, intent)


async def reply_first(
    deps: Deps, d: Deployment, text: str, then: Callable[[], Awaitable[object]]
) -> ReplyFirst:
    """The reply to the command that recorded ``d`` (none when the pass a restart cut short
    sent it), sent before ``then`` shows the deploy's card and starts it."""
    return ReplyFirst(info_reply(text) if await deps.deploys.first_reply(d) else None, then)


async def lock_commands(deps: Deps, actor: str, intent: i.DeployIntent) -> Message:
    locks = deps.locks
    match intent:
        case i.LockEnv(model=model, env=env, reason=reason):
            await locks.lock(actor, model, env, reason)
            return info_reply(f":lock: Locked *{model}/{env}*.")
        case i.UnlockEnv(model=model, env=env):
            await locks.unlock(actor, model, env)
            return info_reply(f":unlock: Unlocked *{model}/{env}*.")
        case i.Freeze(reason=reason):
            await locks.freeze(actor, reason)
            return info_reply(":snowflake: Deploys are frozen.")
        case i.Unfreeze():
            await locks.unfreeze(actor)
            return info_reply(":sunny: Deploys are unfrozen.")
    raise AssertionError(f"unhandled /deploy intent {intent!r}")
