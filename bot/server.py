"""HTTP routes: /slack/events (the Slack edge), /healthz, /readyz, /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from bot.metrics import Metrics
from bot.store import Store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def count_requests(metrics: Metrics) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.request_count(route_name(request), str(status)).inc()

    return middleware


class Routes:
    def __init__(self, slack: Handler | None, store: Store, metrics: Metrics) -> None:
        self.slack = slack
        self.store = store
        self.metrics = metrics

    async def slack_events(self, request: web.Request) -> web.StreamResponse:
        if self.slack is None:
            raise web.HTTPNotFound(text="Slack runs in Socket Mode; no HTTP events here\n")
        return await self.slack(request)

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, _request: web.Request) -> web.Response:
        """Ready when the store answers and its schema is the one this code needs."""
        if not await self.store.ping():
            return web.Response(status=503, text="store unreachable\n")
        try:
            await self.store.ensure_current()
        except Exception as exc:
            return web.Response(status=503, text=f"{exc}\n")
        problem = await self.store.probe_write()
        if problem is not None:
            return web.Response(status=503, text=f"the store cannot take a write: {problem}\n")
        return web.Response(text="ready\n")

    async def metrics_text(self, _request: web.Request) -> web.Response:
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": self.metrics.content_type})


def build_web_app(
    slack: Handler | None, store: Store, metrics: Metrics, *, extra: Sequence[web.RouteDef] = ()
) -> web.Application:
    """``slack`` answers ``POST /slack/events``; None in Socket Mode."""
    routes = Routes(slack, store, metrics)
    app = web.Application(middlewares=[count_requests(metrics)], client_max_size=1024 * 1024)
    app.add_routes(
        [
            web.post("/slack/events", routes.slack_events),
            web.get("/healthz", routes.healthz),
            web.get("/readyz", routes.readyz),
            web.get("/metrics", routes.metrics_text),
            *extra,
        ]
    )
    return app
