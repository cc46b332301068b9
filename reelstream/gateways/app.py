"""The gateways' application factory: one root app, one sub-app per gateway.

    /auth/...        accounts, sessions, devices          (auth.py)
    /licenses/...    the license server                   (licenses.py)
    /manifests/...   per-device HLS/DASH                  (manifests.py)
    /playback/...    heartbeats, resume, continue watching (playback.py)
    /downloads/...   offline downloads                    (downloads.py)

Each gateway serves its OpenAPI document at ``/{gateway}/openapi.json``. Any subset can
run in a process (``reel gateway --only licenses``); all instances are stateless apart
from caches, so any number run behind a load balancer. Background work (the group-commit
publisher, the entitlement and license followers) lives in ``cleanup_ctx``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence

from aiohttp import web

from reelstream.gateways import account_state, entitlements
from reelstream.gateways.auth import auth_app
from reelstream.gateways.downloads import downloads_app
from reelstream.gateways.keys import SERVICES
from reelstream.gateways.licenses import licenses_app
from reelstream.gateways.manifests import manifests_app
from reelstream.gateways.middlewares import errors
from reelstream.gateways.playback import playback_app
from reelstream.gateways.publisher import ORIGIN_HEADER
from reelstream.gateways.services import Services
from reelstream.gateways.settings import GatewaySettings
from reelstream.gateways.views import OVERLAY_S, follow
from reelstream.keys.service import KeyService
from reelstream.runtime import Runtime

GATEWAYS: dict[str, Callable[[], web.Application]] = {
    "auth": auth_app, "licenses": licenses_app, "manifests": manifests_app, "playback": playback_app,
    "downloads": downloads_app,
}


async def _background(app: web.Application) -> AsyncIterator[None]:
    s = app[SERVICES]
    s.publisher.start()
    stop = asyncio.Event()
    # Read back far enough to cover events the entitlement processor may not have applied yet.
    start_ms = s.now_ms() - int(OVERLAY_S * 1000)
    followers = [
        asyncio.create_task(follow([s.entitlements.view], entitlements.TOPIC, s.runtime.log, s.runtime.codec, stop,
                                   start_ms), name="entitlement-follower"),
        asyncio.create_task(follow([s.licenses.view], account_state.TOPIC, s.runtime.log, s.runtime.codec, stop,
                                   start_ms, (ORIGIN_HEADER, s.publisher.instance.encode()), cached_only=True),
                            name="license-follower"),
        asyncio.create_task(follow([s.live_sessions], account_state.SESSIONS_TOPIC, s.runtime.log, s.runtime.codec,
                                   stop, start_ms, cached_only=True), name="live-session-follower")]
    yield
    stop.set()
    await asyncio.gather(*followers)
    await s.live_sessions.drained()
    await s.publisher.stop()
    for adapter in s.adapters.values():
        await adapter.close()
    s.close()


def create_app(runtime: Runtime, settings: GatewaySettings, keys: KeyService | None, *,
               clock: Callable[[], float] = time.time, gateways: Sequence[str] = tuple(GATEWAYS),
               next_episode: Callable[[str], str | None] | None = None, close_runtime: bool = False
               ) -> web.Application:
    """The root app. ``clock`` (wall seconds) is injected for tests that step time."""
    unknown = set(gateways) - set(GATEWAYS)
    if unknown:
        raise ValueError(f"unknown gateway(s) {sorted(unknown)}; known: {', '.join(GATEWAYS)}")
    services = Services(runtime, settings, keys, clock=clock, next_episode=next_episode)
    app = web.Application(middlewares=[errors], client_max_size=settings.max_body_bytes)
    app[SERVICES] = services
    app.cleanup_ctx.append(_background)
    if close_runtime:
        async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
            yield
            runtime.close()
        app.cleanup_ctx.append(runtime_ctx)

    async def health(request: web.Request) -> web.Response:
        p = services.publisher
        return web.json_response({  # pid: `reel up` tells its own gateway from another program on the port
            "gateways": list(gateways), "pid": os.getpid(), "events": {"delivered": p.delivered, "failed": p.failed},
            "cache_loads": {"entitlements": services.entitlements.loads, "licenses": services.licenses.view.loads,
                            "live_sessions": services.live_sessions.loads},
            "live_session_batches": services.live_sessions.batches})

    app.router.add_get("/health", health)
    for name in gateways:
        sub = GATEWAYS[name]()
        sub._client_max_size = settings.max_body_bytes
        app.add_subapp(f"/{name}", sub)
    return app
