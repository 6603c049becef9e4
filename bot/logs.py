"""Structured logging (structlog) with every known secret scrubbed before anything is written."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

SECRET_KEYS = ("token", "secret", "password", "authorization", "signature")
REDACTED = "[redacted]"


class SecretScrubber:
    """A structlog processor: hides values of secret-looking keys and any known secret value."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self.scrub_item(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def scrub_item(self, key: str, value: Any) -> Any:
        if any(word in key.lower() for word in SECRET_KEYS) and value not in (None, ""):
            return REDACTED
        return self.scrub(value)

    def __call__(
        self, _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event):
            event[key] = self.scrub_item(key, event[key])
        return event


def configure_logging(
    level: str = "info",
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    json: bool = True,
) -> SecretScrubber:
    """Set up structlog and the stdlib root logger once, from the CLI."""
    scrubber = SecretScrubber(secrets)
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            scrubber,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=logging.WARNING, stream=stream or sys.stderr, force=True)
    for handler in logging.getLogger().handlers:
        handler.addFilter(StdlibScrubFilter(scrubber))
    return scrubber


class StdlibScrubFilter(logging.Filter):
    """Applies the same scrubbing to what libraries log through the standard library."""

    def __init__(self, scrubber: SecretScrubber) -> None:
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.scrubber.scrub(record.getMessage())
        record.args = ()
        return True
