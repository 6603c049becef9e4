"""A local Slack Web API: same paths, JSON shapes and error bodies as https://slack.com/api/.

``AsyncWebClient(base_url=stand_in.base_url)`` works against it unchanged. Tests and the
sandbox console read what the bot did from ``calls`` and ``messages``, and make Slack
misbehave with ``fail()``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.sandbox.changes import Changes
from bot.sandbox.slack_socket import SocketMode
from bot.sandbox.slack_state import (
    Message,
    SlackError,
    SlackUser,
    Workspace,
    channel_json,
    check_text,
    missing,
    parse_blocks,
    user_json,
    usergroup_json,
)

__all__ = ["Message", "RecordedCall", "SlackStandIn", "SlackUser"]

Handler = Callable[[dict[str, Any]], dict[str, Any]]
Subscriber = Callable[[Message, str], None]


@dataclass
class RecordedCall:
    method: str
    args: dict[str, Any]
    status: int
    body: Any
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Failure:
    status: int
    retry_after: int | None
    times: int


@dataclass
class _ResponseTarget:
    """Where a response_url posts land; ``last_ts`` is what ``replace_original`` replaces."""

    channel: str
    user: str
    last_ts: str | None


def _text(args: dict[str, Any], key: str) -> str | None:
    value = args.get(key)
    return None if value is None or value == "" else str(value)


def _flag(args: dict[str, Any], key: str) -> bool:
    return args.get(key) in (True, 1, "1", "true", "True")


def _required(args: dict[str, Any], key: str) -> str:
    value = _text(args, key)
    if value is None:
        raise missing(key)
    return value


class SlackStandIn:
    """An aiohttp server on 127.0.0.1 that plays Slack's Web API and response_url endpoints."""

    def __init__(
        self,
        *,
        bot_token: str,
        users: list[SlackUser],
        usergroups: dict[str, list[str]],
        channels: dict[str, str],
        usergroup_handles: dict[str, str] | None = None,
        team_id: str = "T0SANDBOX",
        app_token: str | None = None,
        bot_user_id: str = "U0BOT",
    ) -> None:
        self.workspace = Workspace(
            users=users,
            usergroups=usergroups,
            handles=usergroup_handles or {},
            channels=channels,
            team_id=team_id,
            bot_user_id=bot_user_id,
        )
        self.calls: list[RecordedCall] = []
        self._token = bot_token
        self._app_token = app_token
        self.socket_mode = SocketMode()
        self._failures: dict[str, list[_Failure]] = {}
        self._subscribers: list[Subscriber] = []
        self._targets: dict[str, _ResponseTarget] = {}
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._changed = Changes()
        self._methods: dict[str, Handler] = {
            "api.test": lambda args: {"ok": True, "args": args},
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.delete": self._delete,
            "chat.getPermalink": self._permalink,
            "users.info": self._users_info,
            "usergroups.users.list": self._usergroup_users,
            "usergroups.list": self._usergroups,
            "reactions.add": self._reactions_add,
            "reactions.remove": self._reactions_remove,
            "reactions.get": self._reactions_get,
            "conversations.info": self._conversations_info,
            "conversations.replies": self._replies,
            "apps.connections.open": lambda args: {"ok": True, "url": self.socket_url},
        }

    # -- lifecycle and control -------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{token}", self._handle_response_url)
        app.router.add_get("/socket", self.socket_mode.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def socket_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/socket"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/"

    @property
    def messages(self) -> list[Message]:
        return self.workspace.messages

    def calls_to(self, method: str) -> list[RecordedCall]:
        return [call for call in self.calls if call.method == method]

    def fail(
        self, method: str, *, status: int = 429, retry_after: int | None = 1, times: int = 1
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``status`` (429: ratelimited)."""
        self._failures.setdefault(method, []).append(_Failure(status, retry_after, times))

    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - part of the control API tests call
    ) -> None:
        """Wait until ``predicate`` holds, re-checking after every call."""
        await self._changed.wait_for(predicate, timeout)

    def new_response_url(
        self, *, channel: str | None = None, user: str | None = None, message_ts: str | None = None
    ) -> str:
        """A response_url as Slack puts in a slash command or click for ``user`` in ``channel``."""
        ws = self.workspace
        channel_id = ws.channel_id(channel or next(iter(ws.channels)))
        user_id = user or next(u for u in ws.users if u != ws.bot_user_id)
        token = secrets.token_urlsafe(12)
        self._targets[token] = _ResponseTarget(channel_id, user_id, message_ts)
        return f"{self.url}/response/{token}"

    # -- HTTP plumbing ---------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            args = await _read_args(request)
            token = _bearer(request) or str(args.pop("token", "") or "")
            status, body, headers = self._dispatch(method, token, args)
        except SlackError as err:
            args, status, body, headers = {}, 200, err.body(), {}
        self._record(RecordedCall(method, args, status, body))
        return web.json_response(body, status=status, headers=headers)

    def _dispatch(
        self, method: str, token: str, args: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        handler = self._methods.get(method)
        if handler is None:
            return 404, {"ok": False, "error": "unknown_method", "req_method": method}, {}
        if not token:
            return 200, SlackError("not_authed").body(), {}
        expected = self._app_token if method == "apps.connections.open" else self._token
        if not expected or not secrets.compare_digest(token, expected):
            return 200, SlackError("invalid_auth").body(), {}
        failure = self._take_failure(method)
        if failure is not None:
            return _failure_response(failure)
        try:
            return 200, handler(args), {}
        except SlackError as err:
            return 200, err.body(), {}

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        return failure

    def _record(self, call: RecordedCall) -> None:
        self.calls.append(call)
        self._changed.signal()

    def _emit(self, message: Message, kind: str) -> None:
        for callback in self._subscribers:
            callback(message, kind)

    # -- response_url ----------------------------------------------------------------------

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        target = self._targets.get(request.match_info["token"])
        if target is None:
            return web.Response(status=404, text="no_service")
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise SlackError("invalid_payload")
            self._respond(target, payload)
        except (ValueError, SlackError) as err:
            code = err.code if isinstance(err, SlackError) else "invalid_payload"
            self._record(RecordedCall("response_url", {}, 400, code))
            return web.Response(status=400, text=code)
        self._record(RecordedCall("response_url", payload, 200, "ok"))
        return web.Response(text="ok")

    def _respond(self, target: _ResponseTarget, payload: dict[str, Any]) -> None:
        ws = self.workspace
        original = _original(ws.messages, target)
        if _flag(payload, "delete_original"):
            if original is not None:
                original.deleted = True
                self._emit(original, "deleted")
            return
        blocks = parse_blocks(payload.get("blocks"))
        text = str(payload.get("text") or "")
        check_text(text, blocks)
        if _flag(payload, "replace_original") and original is not None:
            original.text, original.blocks = text, blocks
            original.edited += 1
            self._emit(original, "edited")
            return
        message = ws.new(target.channel, text, blocks)
        message.response_type = str(payload.get("response_type") or "ephemeral")
        if message.response_type != "in_channel":
            message.ephemeral_to = target.user
        target.last_ts = ws.add(message).ts
        self._emit(message, "ephemeral" if message.ephemeral_to else "posted")

    # -- Web API methods -------------------------------------------------------------------

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        return {
            "ok": True,
            "url": "https://sandbox.slack.com/",
            "team": "Sandbox",
            "user": ws.users[ws.bot_user_id].name,
            "team_id": ws.team_id,
            "user_id": ws.bot_user_id,
            "bot_id": ws.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(_text(args, "channel"))
        blocks = parse_blocks(args.get("blocks"))
        text = _text(args, "text") or ""
        check_text(text, blocks)
        message = ws.new(channel_id, text, blocks)
        message.thread_ts = _text(args, "thread_ts")
        ws.add(message)
        self._emit(message, "posted")
        return {
            "ok": True,
            "channel": channel_id,
            "ts": message.ts,
            "message": ws.message_json(message),
        }

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(_text(args, "channel"))
        message = ws.find(channel_id, _required(args, "ts"))
        if message.user != ws.bot_user_id:
            raise SlackError("cant_update_message")
        blocks = parse_blocks(args.get("blocks"))
        text = _text(args, "text") or ""
        check_text(text, blocks if blocks is not None else message.blocks)
        message.text = text
        if blocks is not None or "blocks" in args:
            message.blocks = blocks or None
        message.edited += 1
        self._emit(message, "edited")
        return {
            "ok": True,
            "channel": channel_id,
            "ts": message.ts,
            "text": message.text,
            "message": ws.message_json(message),
        }

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(_text(args, "channel"))
        user = ws.user(_required(args, "user"))
        blocks = parse_blocks(args.get("blocks"))
        text = _text(args, "text") or ""
        check_text(text, blocks)
        message = ws.new(channel_id, text, blocks)
        message.ephemeral_to, message.thread_ts = user.id, _text(args, "thread_ts")
        ws.add(message)
        self._emit(message, "ephemeral")
        return {"ok": True, "message_ts": message.ts}

    def _delete(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(_text(args, "channel"))
        message = ws.find(channel_id, _required(args, "ts"))
        if message.user != ws.bot_user_id:
            raise SlackError("cant_delete_message")
        message.deleted = True
        self._emit(message, "deleted")
        return {"ok": True, "channel": channel_id, "ts": message.ts}

    def _permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self.workspace.channel_id(_text(args, "channel"))
        message = self.workspace.find(channel_id, _required(args, "message_ts"))
        link = f"https://sandbox.slack.com/archives/{channel_id}/p{message.ts.replace('.', '')}"
        return {"ok": True, "channel": channel_id, "permalink": link}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        user = ws.user(_text(args, "user"))
        return {"ok": True, "user": user_json(user, ws.team_id, is_bot=user.id == ws.bot_user_id)}

    def _usergroup_users(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "users": list(self.workspace.members(_text(args, "usergroup")))}

    def _usergroups(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        with_users = _flag(args, "include_users")
        groups = [
            usergroup_json(gid, ws.handles[gid], members, ws.team_id, with_users=with_users)
            for gid, members in ws.usergroups.items()
        ]
        return {"ok": True, "usergroups": groups}

    def _reacted(self, args: dict[str, Any]) -> tuple[Message, str]:
        channel_id = self.workspace.channel_id(_text(args, "channel"))
        message = self.workspace.find(channel_id, _required(args, "timestamp"))
        name = (_text(args, "name") or "").strip(":")
        if not name:
            raise SlackError("invalid_name")
        return message, name

    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        message, name = self._reacted(args)
        users = message.reactions.setdefault(name, [])
        if self.workspace.bot_user_id in users:
            raise SlackError("already_reacted")
        users.append(self.workspace.bot_user_id)
        return {"ok": True}

    def _reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        message, name = self._reacted(args)
        users = message.reactions.get(name, [])
        if self.workspace.bot_user_id not in users:
            raise SlackError("no_reaction")
        users.remove(self.workspace.bot_user_id)
        if not users:
            del message.reactions[name]
        return {"ok": True}

    def _reactions_get(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(_text(args, "channel"))
        message = ws.find(channel_id, _required(args, "timestamp"))
        return {
            "ok": True,
            "type": "message",
            "channel": channel_id,
            "message": ws.message_json(message),
        }

    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(_text(args, "channel"))
        return {
            "ok": True,
            "channel": channel_json(channel_id, ws.channels[channel_id], ws.bot_user_id),
        }

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        ws = self.workspace
        channel_id = ws.channel_id(_text(args, "channel"))
        root, *replies = ws.thread(channel_id, _required(args, "ts"))
        messages = [ws.message_json(root), *(ws.message_json(m) for m in replies)]
        if replies:
            reply_users = sorted({m.user for m in replies})
            messages[0].update(
                thread_ts=root.ts,
                reply_count=len(replies),
                latest_reply=replies[-1].ts,
                reply_users=reply_users,
                reply_users_count=len(reply_users),
            )
        return {
            "ok": True,
            "messages": messages,
            "has_more": False,
            "response_metadata": {"next_cursor": ""},
        }


async def _read_args(request: web.Request) -> dict[str, Any]:
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


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _failure_response(failure: _Failure) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers: dict[str, str] = {}
    if failure.status == 429:
        if failure.retry_after is not None:
            headers["Retry-After"] = str(failure.retry_after)
        return 429, {"ok": False, "error": "ratelimited"}, headers
    error = "service_unavailable" if failure.status == 503 else "internal_error"
    return failure.status, {"ok": False, "error": error}, headers


def _original(messages: list[Message], target: _ResponseTarget) -> Message | None:
    for message in messages:
        if message.channel == target.channel and message.ts == target.last_ts:
            return message
    return None
