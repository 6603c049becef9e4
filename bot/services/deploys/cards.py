"""Shows a deployment on its one card, with the approval prompt while it waits."""

from __future__ import annotations

from bot.config.settings import Settings
from bot.domain.deploys import Deployment, DeployState
from bot.services.cards import Cards, reply_key
from bot.store import Store
from bot.views.blocks import Message
from bot.views.deploys import Prompt, deploy_card


def card_key(deploy_id: int) -> str:
    return f"deploy:{deploy_id}"


def deploy_id_of(key: str) -> int | None:
    prefix, _, rest = key.partition(":")
    return int(rest) if prefix == "deploy" and rest.isdigit() else None


class DeployCards:
    def __init__(self, settings: Settings, store: Store, cards: Cards) -> None:
        self.settings = settings
        self.store = store
        self.cards = cards

    def needed(self, d: Deployment) -> int:
        env = self.settings.models[d.model].environments[d.env]
        return env.rollback_approvals if d.kind == "rollback" else env.approvals

    def prompt(self, d: Deployment) -> Prompt | None:
        env = self.settings.models[d.model].environments[d.env]
        needed = self.needed(d)
        if needed == 0:
            return None
        return Prompt(needed=needed, approve_emoji=env.approve_emoji, reject_emoji=env.reject_emoji)

    async def show(self, d: Deployment) -> None:
        run = await self.store.runs.get(d.run_id) if d.run_id is not None else None
        message = deploy_card(d, run, prompt=self.prompt(d), diff=d.diff)
        channel = self.settings.models[d.model].channel
        await self.cards.publish(card_key(d.id), channel, message)

    async def thread(self, d: Deployment, message: Message) -> tuple[str, str] | None:
        """A reply in the card's thread, once per text (the handle ``edit`` takes)."""
        return await self.cards.reply(card_key(d.id), message)

    def edit(self, where: tuple[str, str], message: Message) -> None:
        """Edit a thread reply (coalesced: the latest text wins)."""
        self.cards.revise(where, message)

    async def announce(self, d: Deployment, text: str) -> None:
        """A line in the model's channel, outside the card (rollbacks are always announced),
        through the outbox: posted once, whenever Slack takes it."""
        channel = self.settings.models[d.model].channel
        message = Message(text=text)
        await self.cards.publish(reply_key(f"{card_key(d.id)}:announce", message), channel, message)

    def awaiting(self, d: Deployment) -> bool:
        return d.state == DeployState.AWAITING_APPROVAL
