"""The delivery stack on one machine: the origin app, the nginx tiers and the steering
server, started together (``start_edge``, which ``reel up`` and ``reel edge up`` call),
and the shipper that turns the edges' access logs into ``EdgeRequestServed`` events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from aiohttp import web

from reelstream.addresses import check_bind, reach_host, url_host
from reelstream.edge.origin import origin_app
from reelstream.edge.runner import EdgePortUnavailable, EdgeRunner, EdgeStartFailed, find_nginx
from reelstream.edge.signing import EdgeSecret
from reelstream.edge.steering import DEFAULT_TTL_S, SteeringState, steering_app
from reelstream.edge.topology import Tier, Topology, local_topology
from reelstream.errors import ConfigError
from reelstream.events.model import Event
from reelstream.processors.base import StateReader
from reelstream.processors.cmcd.logic import edge_events
from reelstream.processors.popularity.logic import SCOPE as POPULARITY_SCOPE
from reelstream.processors.popularity.logic import TITLE_POPULARITY, popular_titles
from reelstream.stores.ports import ObjectStore

log = logging.getLogger(__name__)
# How far each node's access log is shipped, kept across restarts of the stack.
LOG_OFFSETS_FILE = "log-offsets.json"


class _Server:
    """An aiohttp app on ``host``:``port`` in a background thread; ``url`` is where this
    machine reaches it (the loopback when ``host`` is a wildcard)."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None)
        ready = threading.Event()
        bound: list[int] = []
        failed: list[OSError] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, host, port)
            try:
                self.loop.run_until_complete(site.start())
            except OSError as err:  # the port is taken, or the host is not ours
                failed.append(err)
                self.loop.run_until_complete(self.runner.cleanup())
                ready.set()
                return
            bound.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.runner.cleanup())

        self.thread = threading.Thread(target=run, daemon=True, name=f"edge-app-{port}")
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"could not serve on {host}:{port}: not listening after 10 s")
        if failed:
            raise EdgePortUnavailable(host, port, failed[0])
        self.url = f"http://{url_host(reach_host(host))}:{bound[0]}"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class EdgeStack:
    topology: Topology
    runner: EdgeRunner
    origin: _Server | None  # None: the PoP fills from an origin that runs elsewhere
    steering: _Server | None  # None: it runs beside the PoP, elsewhere (an appliance-only stack)
    steering_state: SteeringState
    log_offsets: dict[str, int] = field(default_factory=dict)
    log_inodes: dict[str, int] = field(default_factory=dict)  # a rotated log is a new file: ship it from 0

    @property
    def steering_url(self) -> str | None:
        return self.steering.url if self.steering else None

    @property
    def origin_url(self) -> str:
        return self.topology.origin_url

    def set_popular(self, titles: Iterable[str]) -> None:
        titles = list(titles)
        self.runner.set_popular(titles)
        self.steering_state.popular = frozenset(titles)

    def refresh_popular(self, state: StateReader, pinned: Iterable[str] = (), top_n: int = 1000) -> bool:
        """Take the popularity processor's list (plus ``pinned`` titles) to the appliances and
        the steering server; reloads nginx only when the list changed. True when it did."""
        titles = frozenset(popular_titles(state.query(TITLE_POPULARITY, (POPULARITY_SCOPE,)), top_n)) | set(pinned)
        if titles == self.steering_state.popular:
            return False
        try:
            self.set_popular(sorted(titles))
        except EdgeStartFailed as e:  # the appliances serve on with the old list; so does steering
            log.error("%s", e)
            return False
        return True

    @property
    def offsets_path(self) -> Path:
        return self.topology.work_dir / LOG_OFFSETS_FILE

    def load_log_offsets(self) -> None:
        """Resume shipping where the last run saved (so a restart does not ship the logs again)."""
        try:
            saved = json.loads(self.offsets_path.read_text())
        except FileNotFoundError:
            return
        except ValueError:
            log.warning("%s is not JSON; shipping the access logs from their start", self.offsets_path)
            return
        if not isinstance(saved, dict):
            return
        for name, entry in saved.items():
            if isinstance(entry, dict) and isinstance(entry.get("offset"), int) and isinstance(entry.get("inode"), int):
                self.log_offsets[name], self.log_inodes[name] = entry["offset"], entry["inode"]

    def save_log_offsets(self) -> None:
        """Record how far the logs are shipped; call it once what ``ship_logs`` published is durable."""
        staged = self.offsets_path.with_suffix(".tmp")
        staged.write_text(json.dumps({name: {"offset": offset, "inode": self.log_inodes.get(name, 0)}
                                      for name, offset in self.log_offsets.items()}))
        os.replace(staged, self.offsets_path)

    def ship_logs(self, publish: Callable[[Event], None], producer: str = "edge-logs") -> int:
        """Publish the access-log lines written since the last call; returns events published.
        A line that cannot become an event is logged and skipped, never retried."""
        shipped = 0
        for node in self.runner.nodes:  # those run here: another machine ships its own
            path = self.topology.node_dir(node) / "logs" / "access.log"
            if not path.exists():
                continue
            start, status = self.log_offsets.get(node.name, 0), path.stat()
            if self.log_inodes.get(node.name, status.st_ino) != status.st_ino or start > status.st_size:
                start = 0  # the log was rotated or truncated since that offset
            self.log_inodes[node.name] = status.st_ino
            with path.open("rb") as f:
                f.seek(start)
                data = f.read()
            complete = data[:data.rfind(b"\n") + 1]
            lines, offset = [], start
            for raw in complete.splitlines(keepends=True):
                lines.append((offset, raw.decode("utf-8", "replace")))
                offset += len(raw)
            for event in edge_events(lines, producer, skipped=partial(_skipped_line, node.name)):
                publish(event)
                shipped += 1
            self.log_offsets[node.name] = start + len(complete)
        return shipped

    def stop(self) -> None:
        self.runner.stop()
        if self.steering is not None:
            self.steering.stop()
        if self.origin is not None:
            self.origin.stop()


def _skipped_line(node: str, offset: int, line: str, error: Exception) -> None:
    log.warning("edge %s: access-log line at byte %d skipped (%s): %.200s", node, offset, error, line.rstrip())


def start_edge(objects: ObjectStore, work_dir: Path, secret: EdgeSecret, *, popular: Iterable[str] = (),
               base_port: int = 18400, isps: tuple[str, ...] = ("isp-a",), license_base: str = "/licenses",
               host: str = "127.0.0.1", appliance_connections: int = 512, steering_ttl_s: int = DEFAULT_TTL_S,
               probe_interval_s: float = 2.0, origin_url: str | None = None, tier: Tier | None = None,
               pop_host: str | None = None, appliance_host: str | None = None,
               status_allow: tuple[str, ...] = ()) -> EdgeStack:
    """Start origin (``base_port - 1``), PoP (``base_port``), one appliance per ISP and the
    steering server (``base_port - 2``), which probes every node each ``probe_interval_s``,
    all listening on ``host`` (0.0.0.0: every interface, as in a container). With
    ``origin_url`` the PoP fills from that origin and none is started here.

    ``tier``: run that tier only (one machine or container per tier), the other reached at
    ``pop_host`` / ``appliance_host`` on its usual port: ``pop`` runs the PoP and the steering
    server (which probes the appliances there), ``appliance`` the appliances (filling from the
    PoP there). ``status_allow``: further addresses that may read the nodes' stub_status
    (where steering probes from, when that is another machine).
    Raises NginxMissing (saying how to install it) when nginx is absent; ``reel up`` prints
    that and runs without the tiers."""
    find_nginx()
    check_bind(host)
    origin: _Server | None = None
    if tier is not None and not origin_url:
        raise ConfigError(f"the {tier} tier alone needs the origin's URL (origin_url, `--origin-url`)")
    if not origin_url:
        origin = _Server(origin_app(objects, license_base), host, base_port - 1)
        origin_url = origin.url
    try:
        topology = local_topology(origin_url, work_dir, base_port=base_port, isps=isps,
                                  appliance_connections=appliance_connections, bind=host, pop_host=pop_host,
                                  appliance_host=appliance_host, status_allow=status_allow)
        here = [n.name for n in topology.nodes if tier in (None, n.tier)]
        runner = EdgeRunner(topology, secret, popular=popular, only=here).start()
    except BaseException:
        if origin is not None:
            origin.stop()
        raise
    state = SteeringState(topology, popular=frozenset(popular), ttl_s=steering_ttl_s)
    # Steering runs beside the PoP: it is what moves sessions off an appliance that fails, so
    # it must not go down with one.
    steering = _Server(steering_app(state, probe_interval_s), host, base_port - 2) if tier != "appliance" else None
    for node in runner.nodes:
        log.info("edge node %s (%s) on %s", node.name, node.tier, node.base_url)
    stack = EdgeStack(topology, runner, origin, steering, state)
    stack.load_log_offsets()
    return stack
