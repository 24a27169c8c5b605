"""The admin listener (loopback by default): /healthz, /readyz, /metrics.

/metrics delegates to a handler passed in (the Prometheus exposition of the metrics sink);
until one is given it answers a placeholder. `--admin-token` protects /metrics.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from yarl import URL

from proxy.config import Settings

MetricsHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ADMIN_SETTINGS = web.AppKey("admin_settings", Settings)

_PLACEHOLDER = "# assistants-audit: no metrics sink configured in this process\n"


async def upstream_reachable(settings: Settings) -> bool:
    """True when a TCP connection to the upstream opens within connect_timeout."""
    url = URL(settings.upstream)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(url.host, url.port), timeout=settings.connect_timeout
        )
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


def make_admin_app(settings: Settings, *, metrics_handler: MetricsHandler | None = None) -> web.Application:
    """`metrics_handler` serves /metrics (proxy.sinks.metrics.metrics_handler of a registry, or
    the supervisor's relay to the recorder's)."""
    app = web.Application()
    app[ADMIN_SETTINGS] = settings
    token = settings.admin_token.encode() if settings.admin_token else None

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        if await upstream_reachable(settings):
            return web.json_response({"status": "ready", "upstream": "reachable"})
        return web.json_response({"status": "not ready", "upstream": "unreachable"}, status=503)

    async def metrics(request: web.Request) -> web.StreamResponse:
        if token is not None:
            scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(offered.strip().encode(), token):
                return web.json_response({"error": "admin token required"}, status=401,
                                         headers={"WWW-Authenticate": "Bearer"})
        if metrics_handler is None:
            return web.Response(text=_PLACEHOLDER, content_type="text/plain")
        return await metrics_handler(request)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
