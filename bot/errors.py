"""One error hierarchy: every message is safe to show the user (no secrets, no stack traces)."""

from __future__ import annotations


class BotError(Exception):
    """Base of every error the bot raises on purpose; ``str(err)`` is shown to the user."""

    kind = "internal"


class UserInputError(BotError):
    """The command text or a button value is malformed; the message says what would be valid."""

    kind = "user_input"


class NotAllowed(BotError):
    """Policy denied the action; the message names the role that is needed."""

    kind = "not_allowed"


class Conflict(BotError):
    """The action clashes with current state: a lock is held, a freeze is on, ..."""

    kind = "conflict"


class NotFound(BotError):
    """A run, deploy or other stored thing the user named does not exist."""

    kind = "not_found"


class ExternalError(BotError):
    """An outside system (Slack, GitLab, AWS, Kubernetes) failed after retries."""

    kind = "external"


class ConfigError(BotError):
    """The configuration is invalid; ``issues`` holds one line per problem."""

    kind = "config"

    def __init__(self, issues: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(issues))
        self.issues = issues
