"""Socket Mode as Slack serves it: a WebSocket that says hello and sends envelopes to ack."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from bot.sandbox.changes import Changes


class SocketMode:
    """`apps.connections.open` hands out this WebSocket's URL; the server says hello, sends
    envelopes and expects each to be acknowledged by its envelope_id."""

    def __init__(self) -> None:
        self.sockets: list[web.WebSocketResponse] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.changed = Changes()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets.append(socket)
        self.changed.signal()
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": len(self.sockets),
                "connection_info": {"app_id": "A0SANDBOX"},
                "debug_info": {"host": "sandbox"},
            }
        )
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                self.acknowledged(json.loads(message.data))
        self.sockets.remove(socket)
        return socket

    def acknowledged(self, data: dict[str, Any]) -> None:
        if "envelope_id" in data:
            self.acks[str(data["envelope_id"])] = data
            self.changed.signal()

    async def connected(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await self.changed.wait_for(lambda: bool(self.sockets), timeout)

    async def send(self, kind: str, payload: dict[str, Any]) -> str:
        """Deliver one envelope (``slash_commands``, ``interactive`` or ``events_api``)."""
        envelope_id = str(uuid.uuid4())
        await self.sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": 0,
            }
        )
        return envelope_id

    async def acked(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        await self.changed.wait_for(lambda: envelope_id in self.acks, timeout)
        return self.acks[envelope_id]
