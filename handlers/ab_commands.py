"""/deploy <model> ab <env> ...: each A/B action goes to the experiments service."""

from __future__ import annotations

from bot import intents as i
from bot.views import ab as views
from bot.views.blocks import Message
from bot.views.replies import info_reply
from handlers.deps import Deps


async def dispatch(
    deps: Deps, actor: str, intent: i.AbCommand, request: str | None = None
) -> Message:
    """``request``: the Slack delivery's key; a replayed start or promote opens one deploy."""
    ab = deps.ab
    where = f"*{intent.model}/{intent.env}*"
    match intent.action:
        case i.AbAction.START:
            e = await ab.start(actor, intent, request)
            return info_reply(
                f":test_tube: A/B #{e.id} on {where}: run #{e.run_b} goes to B ({e.b_env}) as "
                f"deploy #{e.deploy_id}; once it is verified B gets {e.weight}% of the traffic. "
                "The A/B card is in the model's channel."
            )
        case i.AbAction.SET:
            return info_reply(await ab.set(actor, intent))
        case i.AbAction.PROMOTE:
            d = await ab.promote(actor, intent, request)
            return info_reply(
                f":rocket: Promoting B on {where}: deploy #{d.id} ships `{d.image_tag}` to A "
                f"({d.state}); all traffic returns to A once it is verified."
            )
        case i.AbAction.ABORT:
            return info_reply(await ab.abort(actor, intent))
        case i.AbAction.STATUS:
            report = await ab.status(actor, intent)
            return views.ab_status_reply(report, ab.cards.guarding_of(intent.model, intent.env))
    raise AssertionError(f"unhandled A/B action {intent.action!r}")
