"""Content steering: which edge a session should use, ranked per session, and the
steering server that answers players with it.

The response is the steering manifest shared by HLS (draft-pantos-hls-rfc8216bis
§7.2, "Content Steering") and DASH (DASH-IF Content Steering, which reuses the same JSON
and sends ``_DASH_pathway``/``_DASH_throughput`` instead of ``_HLS_*``)::

    {"VERSION": 1, "TTL": 10, "RELOAD-URI": "...", "PATHWAY-PRIORITY": ["appliance-isp-a", "pop-1"]}

Ranking (``rank``, pure): the viewer's ISP appliance first when the title is on the
popularity list, then the appliance's PoP, then other PoPs; a node that fails its health
probe is dropped, one above the load limit goes to the end. Players move between tiers
at the next TTL without a new manifest.
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

from reelstream.edge.topology import EdgeNode, Topology

STEERING_VERSION = 1
DEFAULT_TTL_S = 10
OVERLOAD = 0.85  # share of a node's capacity above which new sessions are steered away


@dataclass(frozen=True)
class NodeHealth:
    healthy: bool = True
    load: float = 0.0  # 0..1 of the node's serving capacity


@dataclass(frozen=True)
class SessionContext:
    session_id: str
    title_id: str
    isp: str | None


def rank(topology: Topology, context: SessionContext, popular: Collection[str],
         health: Mapping[str, NodeHealth]) -> list[str]:
    """Pathway ids (node names), best first, for one session."""
    ordered: list[EdgeNode] = []
    if context.title_id in popular:
        ordered += [n for n in topology.tier("appliance") if n.isp == context.isp]
    parents = {n.parent for n in ordered}
    pops = sorted(topology.tier("pop"), key=lambda n: (n.name not in parents, n.name))
    ordered += pops
    alive = [n for n in ordered if health.get(n.name, NodeHealth()).healthy]
    if not alive:
        alive = pops  # every node looks down: a PoP is still the best guess (and the player retries)
    calm = [n.name for n in alive if health.get(n.name, NodeHealth()).load < OVERLOAD]
    busy = [n.name for n in alive if health.get(n.name, NodeHealth()).load >= OVERLOAD]
    return calm + busy


def steering_manifest(priority: list[str], ttl_s: int, reload_uri: str | None) -> dict[str, object]:
    body: dict[str, object] = {"VERSION": STEERING_VERSION, "TTL": ttl_s, "PATHWAY-PRIORITY": priority}
    if reload_uri:
        body["RELOAD-URI"] = reload_uri
    return body


def steering_uri(base: str, context: SessionContext) -> str:
    """What a manifest's SERVER-URI / ContentSteering names for one session."""
    return f"{base.rstrip('/')}/steering?" + urlencode(
        {"session": context.session_id, "title": context.title_id, "isp": context.isp or ""})


# --------------------------------------------------------------------------- the server


@dataclass
class SteeringState:
    topology: Topology
    popular: frozenset[str] = frozenset()
    health: dict[str, NodeHealth] = field(default_factory=dict)
    ttl_s: int = DEFAULT_TTL_S


STATE = web.AppKey("steering_state", SteeringState)


async def steer(request: web.Request) -> web.Response:
    state = request.app[STATE]
    q = request.query
    context = SessionContext(q.get("session", ""), q.get("title", ""), q.get("isp") or None)
    priority = rank(state.topology, context, state.popular, state.health)
    reload_uri = str(request.url.with_query({k: v for k, v in q.items() if not k.startswith("_")}))
    return web.json_response(steering_manifest(priority, state.ttl_s, reload_uri),
                             headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"})


def probe(node: EdgeNode, timeout_s: float = 1.0) -> NodeHealth:
    try:
        with urllib.request.urlopen(f"{node.base_url}/healthz", timeout=timeout_s) as response:
            return NodeHealth(healthy=response.status == 200)
    except OSError:
        return NodeHealth(healthy=False)


async def _probe_loop(app: web.Application, interval_s: float, prober: Callable[[EdgeNode], NodeHealth]) -> None:
    state = app[STATE]
    while True:
        for node in state.topology.nodes:
            health = await asyncio.to_thread(prober, node)
            previous = state.health.get(node.name, NodeHealth())
            state.health[node.name] = NodeHealth(health.healthy, previous.load)
        await asyncio.sleep(interval_s)


def steering_app(state: SteeringState, probe_interval_s: float | None = 2.0,
                 prober: Callable[[EdgeNode], NodeHealth] = probe) -> web.Application:
    """``GET /steering?session=&title=&isp=`` (plus the players' ``_HLS_*``/``_DASH_*``)."""
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/steering", steer)

    async def probing(app: web.Application):  # type: ignore[no-untyped-def]
        task = asyncio.create_task(_probe_loop(app, probe_interval_s or 2.0, prober)) if probe_interval_s else None
        yield
        if task:
            task.cancel()

    app.cleanup_ctx.append(probing)
    return app

