"""Reading Web API arguments where and as Slack does, and the shape of a method handler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from bot.sandbox.slack.state import Message, SlackError, missing

Handler = Callable[[dict[str, Any]], dict[str, Any]]
Emit = Callable[[Message, str], None]


def text_arg(args: dict[str, Any], key: str) -> str | None:
    value = args.get(key)
    return None if value is None or value == "" else str(value)


def flag_arg(args: dict[str, Any], key: str) -> bool:
    return args.get(key) in (True, 1, "1", "true", "True")


def required_arg(args: dict[str, Any], key: str) -> str:
    value = text_arg(args, key)
    if value is None:
        raise missing(key)
    return value


async def read_args(request: web.Request) -> dict[str, Any]:
    """Query params, then a JSON or form body on top, as Slack accepts them."""
    args: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return args
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise SlackError("invalid_json") from None
        if not isinstance(body, dict):
            raise SlackError("invalid_json")
        args.update(body)
    else:
        form = await request.post()
        args.update({key: value for key, value in form.items() if isinstance(value, str)})
    return args


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
