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

What the ranking knows of each node comes from probing it (``probe``): ``/healthz``
answers or not, and nginx's own ``stub_status`` counts its open connections, which over
the node's ``max_connections`` is its load. Probes run every ``probe_interval_s``.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

from reelstream.edge.topology import EdgeNode, Topology
from reelstream.errors import ConfigError

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


def parse_pathways(setting: str) -> tuple[tuple[str, str], ...]:
    """``REEL_EDGE_PATHWAYS`` (``name=http://host:port,...``) as ((pathway id, base URL), ...),
    in the order given (the first is the manifest's default); ConfigError naming the variable."""
    pathways: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in setting.split(","))):
        name, _, url = item.partition("=")
        if not _PATHWAY_ID.match(name) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"REEL_EDGE_PATHWAYS: {item!r} is not name=http(s)://host[:port] "
                              "(names: letters, digits, '.', '_', '-')")
        pathways.append((name, url.rstrip("/")))
    if len({name for name, _ in pathways}) != len(pathways):
        raise ConfigError(f"REEL_EDGE_PATHWAYS: pathway names repeat in {setting!r}")
    return tuple(pathways)


def check_steering(pathways: str, steering_url: str) -> None:
    """The gateway's steering settings, checked at start (both or neither)."""
    if bool(parse_pathways(pathways)) != bool(steering_url):
        raise ConfigError("REEL_EDGE_PATHWAYS and REEL_STEERING_URL go together: set both for content "
                          "steering, or neither for one edge (REEL_EDGE_BASE_URL)")
    if steering_url and not steering_url.startswith(("http://", "https://")):
        raise ConfigError(f"REEL_STEERING_URL = {steering_url!r}: must be an http(s) URL")


# rfc8216bis §4.4.6.6: a PATHWAY-ID is [a-zA-Z0-9], '.', '-' and '_'.
_PATHWAY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


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
    """Ask the node itself: ``/healthz`` must answer 200, and nginx's ``stub_status`` says how
    many connections it holds (this probe's own included) against ``node.max_connections``."""
    try:
        with urllib.request.urlopen(f"{node.base_url}/healthz", timeout=timeout_s) as response:
            if response.status != 200:
                return NodeHealth(healthy=False)
        with urllib.request.urlopen(f"{node.base_url}{STATUS_PATH}", timeout=timeout_s) as response:
            active = active_connections(response.read().decode("ascii", "replace"))
    except (OSError, ValueError):  # refused, timed out, an HTTP error, or not nginx's status page
        return NodeHealth(healthy=False)
    return NodeHealth(healthy=True, load=max(0, active - 1) / node.max_connections)


STATUS_PATH = "/nginx-status"  # nginx.py serves stub_status there, to the probing addresses only
_ACTIVE = re.compile(r"^Active connections:\s*(\d+)", re.MULTILINE)


def active_connections(stub_status: str) -> int:
    """The first line of ngx_http_stub_status_module's page: ``Active connections: N``."""
    match = _ACTIVE.search(stub_status)
    if match is None:
        raise ValueError(f"not an nginx stub_status page: {stub_status[:60]!r}")
    return int(match[1])


async def _probe_loop(app: web.Application, interval_s: float, prober: Callable[[EdgeNode], NodeHealth]) -> None:
    state = app[STATE]
    while True:
        for node in state.topology.nodes:
            state.health[node.name] = await asyncio.to_thread(prober, node)
        await asyncio.sleep(interval_s)


def steering_app(state: SteeringState, probe_interval_s: float | None = 2.0,
                 prober: Callable[[EdgeNode], NodeHealth] = probe) -> web.Application:
    """``GET /steering?session=&title=&isp=`` (plus the players' ``_HLS_*``/``_DASH_*``)."""
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/steering", steer)

    async def probing(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_probe_loop(app, probe_interval_s or 2.0, prober)) if probe_interval_s else None
        yield
        if task:
            task.cancel()

    app.cleanup_ctx.append(probing)
    return app

