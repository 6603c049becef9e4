"""Environment locks and the global deploy freeze: the first feature end to end."""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import Clock, utcnow
from bot.config.settings import Settings
from bot.domain.deploys import Freeze, Lock
from bot.errors import Conflict, NotFound
from bot.policy import Action
from bot.services.access import Access
from bot.services.cards import Cards
from bot.store import Store
from bot.views import locks as views
from bot.views.blocks import Message, escape, user, when


@dataclass(frozen=True)
class ModelStatus:
    model: str
    envs: list[str]
    locks: list[Lock]
    freeze: Freeze | None


def held_by(lock: Lock) -> str:
    return f"locked by {user(lock.holder)} since {when(lock.since)}: {escape(lock.reason)}"


class Locks:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        access: Access,
        cards: Cards,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.access = access
        self.cards = cards
        self.clock = clock

    async def lock(self, actor: str, model: str, env: str, reason: str) -> Lock:
        await self.access.check(actor, Action.LOCK, model, env)
        wanted = Lock(model=model, env=env, holder=actor, reason=reason, since=self.clock())
        taken, current = await self.store.acquire_lock(wanted)
        if not taken:
            raise Conflict(f"{model}/{env} is already {held_by(current)}.")
        await self.cards.repost(card_key(model, env), self.channel(model), views.lock_card(current))
        return current

    async def unlock(self, actor: str, model: str, env: str) -> Lock:
        """Release the lock; only its holder or an admin may."""
        await self.access.check(actor, Action.UNLOCK, model, env)
        current = await self.store.get_lock(model, env)
        if current is None:
            raise NotFound(f"{model}/{env} is not locked.")
        if current.holder != actor:
            await self.access.check(actor, Action.OVERRIDE, None)
        released = await self.store.release_lock(model, env, holder=current.holder)
        if released is None:
            raise Conflict(
                f"{model}/{env} changed hands meanwhile; look again with `/deploy {model} status`."
            )
        await self.announce(model, env, views.unlocked_card(released, actor))
        return released

    async def freeze(self, actor: str, reason: str) -> Freeze:
        await self.access.check(actor, Action.FREEZE, None)
        taken, current = await self.store.set_freeze(
            Freeze(holder=actor, reason=reason, since=self.clock())
        )
        if not taken:
            raise Conflict(
                f"Deploys are already frozen by {user(current.holder)} since "
                f"{when(current.since)}: {escape(current.reason)}."
            )
        await self.broadcast(views.freeze_card(current))
        return current

    async def unfreeze(self, actor: str) -> Freeze:
        await self.access.check(actor, Action.FREEZE, None)
        cleared = await self.store.clear_freeze()
        if cleared is None:
            raise NotFound("Deploys are not frozen.")
        await self.broadcast(views.unfrozen_card(cleared, actor))
        return cleared

    async def status(self, actor: str, model: str) -> ModelStatus:
        await self.access.check(actor, Action.DEPLOY_VIEW, model)
        envs = list(self.settings.models[model].environments)
        locks = await self.store.list_locks(model)
        return ModelStatus(model, envs, locks, await self.store.get_freeze())

    def channel(self, model: str) -> str:
        return self.settings.models[model].channel

    async def announce(self, model: str, env: str, message: Message) -> None:
        await self.cards.publish(card_key(model, env), self.channel(model), message)

    async def broadcast(self, message: Message) -> None:
        """Tell every model channel once (freezes concern every deploy)."""
        for channel in sorted({m.channel for m in self.settings.models.values()}):
            await self.cards.repost(f"freeze:{channel}", channel, message)


def card_key(model: str, env: str) -> str:
    return f"lock:{model}:{env}"
