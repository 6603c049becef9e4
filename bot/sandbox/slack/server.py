"""The Slack stand-in's aiohttp server: routing, auth, failure steering and the method table."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.sandbox.changes import Changes
from bot.sandbox.slack.args import Handler, bearer_token, read_args
from bot.sandbox.slack.chat import Chat
from bot.sandbox.slack.conversations import Conversations
from bot.sandbox.slack.directory import Directory
from bot.sandbox.slack.files import Files
from bot.sandbox.slack.reactions import Reactions
from bot.sandbox.slack.response_url import ResponseUrls
from bot.sandbox.slack.socket import SocketMode
from bot.sandbox.slack.state import Message, SlackError, SlackUser, Workspace

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


OUTAGE_KINDS = ("429", "500", "hang")


@dataclass
class Outage:
    """Slack down for a method (or all): 429 with Retry-After, 500, or calls that take effect
    and answer only after ``seconds`` (or at recovery), as a slow Slack does."""

    kind: str
    retry_after: int = 1
    seconds: float = 30.0
    released: asyncio.Event = field(default_factory=asyncio.Event)


class SlackStandIn:
    """An aiohttp server on 127.0.0.1 that plays Slack's Web API and response_url endpoints.

    Same paths, JSON shapes and error bodies as https://slack.com/api/, so
    ``AsyncWebClient(base_url=stand_in.base_url)`` works against it unchanged. Tests and the
    sandbox console read what the bot did from ``calls`` and ``messages``, and make Slack
    misbehave with ``fail()`` (the next few calls) or ``outage()`` (until ``recover()``).
    """

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
        self.response_peers: list[Any] = []  # the client address of each response_url post
        self._token = bot_token
        self._app_token = app_token
        self.socket_mode = SocketMode()
        self._failures: dict[str, list[_Failure]] = {}
        self._outages: dict[str | None, Outage] = {}
        self._subscribers: list[Subscriber] = []
        self._responses = ResponseUrls(self.workspace, self._emit)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._changed = Changes()
        self.files = Files(self.workspace, self._emit, lambda: self.url)
        self._methods: dict[str, Handler] = {
            "api.test": lambda args: {"ok": True, "args": args},
            "auth.test": self._auth_test,
            **Chat(self.workspace, self._emit).methods(),
            **Directory(self.workspace).methods(),
            **Reactions(self.workspace).methods(),
            **Conversations(self.workspace).methods(),
            **self.files.methods(),
            "apps.connections.open": lambda args: {"ok": True, "url": self.socket_url},
        }

    # -- lifecycle and control -------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/response/{token}", self._handle_response_url)
        app.router.add_post("/upload/v1/{ticket}", self._handle_upload)
        app.router.add_get("/socket", self.socket_mode.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self.recover()
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

    def outage(
        self,
        kind: str,
        method: str | None = None,
        *,
        retry_after: int = 1,
        seconds: float = 30.0,
    ) -> None:
        """Until ``recover()``, every call of ``method`` (every method when None) answers 429
        with ``Retry-After``, answers 500, or (``hang``) takes effect and answers ``seconds``
        later (or at recovery, whichever comes first)."""
        if kind not in OUTAGE_KINDS:
            raise ValueError(f"unknown outage {kind!r}: one of {', '.join(OUTAGE_KINDS)}")
        self.recover(method)
        self._outages[method] = Outage(kind, retry_after=retry_after, seconds=seconds)

    def recover(self, method: str | None = None) -> None:
        """End the outage of ``method`` (all outages when None); held answers go out now."""
        ended = list(self._outages.values()) if method is None else []
        if method is not None and method in self._outages:
            ended.append(self._outages[method])
        for outage in ended:
            outage.released.set()
        if method is None:
            self._outages.clear()
        else:
            self._outages.pop(method, None)

    def outage_of(self, method: str) -> Outage | None:
        return self._outages.get(method) or self._outages.get(None)

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
        token = self._responses.new(channel=channel, user=user, message_ts=message_ts)
        return f"{self.url}/response/{token}"

    # -- HTTP plumbing ---------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        outage = self.outage_of(method)
        try:
            args = await read_args(request)
            token = bearer_token(request) or str(args.pop("token", "") or "")
            if outage is not None and outage.kind != "hang":
                status, body, headers = _outage_response(outage)
            else:
                status, body, headers = self._dispatch(method, token, args)
        except SlackError as err:
            args, status, body, headers = {}, 200, err.body(), {}
        self._record(RecordedCall(method, args, status, body))
        if outage is not None and outage.kind == "hang":
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(outage.seconds):
                    await outage.released.wait()
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

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        if request.transport is not None:
            self.response_peers.append(request.transport.get_extra_info("peername"))
        target = self._responses.target(request.match_info["token"])
        if target is None:
            return web.Response(status=404, text="no_service")
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise SlackError("invalid_payload")
            self._responses.respond(target, payload)
        except (ValueError, SlackError) as err:
            code = err.code if isinstance(err, SlackError) else "invalid_payload"
            self._record(RecordedCall("response_url", {}, 400, code))
            return web.Response(status=400, text=code)
        self._record(RecordedCall("response_url", payload, 200, "ok"))
        return web.Response(text="ok")

    async def _handle_upload(self, request: web.Request) -> web.Response:
        """An upload URL from files.getUploadURLExternal; ``fail("upload")`` steers it too."""
        failure = self._take_failure("upload")
        if failure is not None:
            status, body, headers = _failure_response(failure)
            self._record(RecordedCall("upload", {}, status, body))
            return web.json_response(body, status=status, headers=headers)
        status, text = await self.files.upload(request.match_info["ticket"], request)
        self._record(RecordedCall("upload", {"ticket": request.match_info["ticket"]}, status, text))
        return web.Response(status=status, text=text)

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


def _outage_response(outage: Outage) -> tuple[int, dict[str, Any], dict[str, str]]:
    status = 429 if outage.kind == "429" else 500
    return _failure_response(_Failure(status, outage.retry_after, 1))


def _failure_response(failure: _Failure) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers: dict[str, str] = {}
    if failure.status == 429:
        if failure.retry_after is not None:
            headers["Retry-After"] = str(failure.retry_after)
        return 429, {"ok": False, "error": "ratelimited"}, headers
    error = "service_unavailable" if failure.status == 503 else "internal_error"
    return failure.status, {"ok": False, "error": error}, headers
