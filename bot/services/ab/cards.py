"""Shows an A/B experiment on its one card, edited in place, with its history and any prompt."""

from __future__ import annotations

from bot.config.ab import AbConfig
from bot.config.settings import Settings
from bot.domain.ab import Experiment
from bot.errors import UserInputError
from bot.services.cards import Cards, reply_key
from bot.store import Store
from bot.views.ab import Guarding, Prompt, ab_card
from bot.views.blocks import Message, section


def card_key(experiment_id: int) -> str:
    return f"ab:{experiment_id}"


def experiment_id_of(key: str) -> int | None:
    prefix, _, rest = key.partition(":")
    return int(rest) if prefix == "ab" and rest.isdigit() else None


class AbCards:
    def __init__(self, settings: Settings, store: Store, cards: Cards) -> None:
        self.settings = settings
        self.store = store
        self.cards = cards

    def config(self, model: str, env: str) -> AbConfig:
        """The A/B setup of ``model``/``env``; a clear error when there is none."""
        envs = self.settings.models[model].environments
        ab = envs[env].ab if env in envs else None
        if ab is None:
            raise UserInputError(
                f"{model}/{env} has no A/B setup; an environment declares one under `ab:` "
                "in the bot's configuration."
            )
        return ab

    def prompt(self, e: Experiment) -> Prompt:
        env = self.settings.models[e.model].environments[e.env]
        return Prompt(self.config(e.model, e.env).approvals, env.approve_emoji, env.reject_emoji)

    def guarding(self, e: Experiment) -> Guarding:
        return self.guarding_of(e.model, e.env)

    def guarding_of(self, model: str, env: str) -> Guarding:
        guard = self.config(model, env).guard
        return Guarding(guard.interval_seconds, guard.consecutive_breaches)

    async def show(self, e: Experiment) -> None:
        history = await self.store.ab.history(e.id)
        run_a = await self.store.runs.get(e.run_a) if e.run_a else None
        run_b = await self.store.runs.get(e.run_b) if e.run_b else None
        message = ab_card(e, (run_a, run_b), history, self.guarding(e), self.prompt(e))
        await self.cards.publish(card_key(e.id), self.settings.models[e.model].channel, message)

    async def thread(self, e: Experiment, text: str) -> None:
        await self.cards.reply(card_key(e.id), Message(text=text, blocks=[section(text)]))

    async def announce(self, model: str, text: str) -> None:
        """A line in the model's channel, outside the card (aborts are always announced),
        through the outbox: posted once, whenever Slack takes it."""
        message = Message(text=text)
        key = reply_key(f"announce:{model}", message)
        await self.cards.publish(key, self.settings.models[model].channel, message)
