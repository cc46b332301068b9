"""A delivery topology: the origin, CDN PoP nodes and ISP-appliance nodes, described as
data. ``nginx.py`` renders each node's config from it; ``runner.py`` runs them;
``steering.py`` ranks them per session.

Tiers (issue #6): an *appliance* sits inside one ISP's network and fills from its
*parent* PoP; it holds only titles on the popularity list (``popular.py`` output), and
long-tail requests are steered to the PoP (and, if they arrive anyway, passed through
without being stored). A *PoP* fills from the origin.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reelstream.addresses import check_bind, reach_host, url_host
from reelstream.errors import ConfigError

Tier = Literal["pop", "appliance"]
GB = 1024**3


@dataclass(frozen=True)
class EdgeNode:
    """One nginx cache node."""

    name: str  # also its pathway / serviceLocation id in manifests: [a-z0-9-]
    tier: Tier
    port: int  # loopback port it listens on
    cache_bytes: int  # proxy_cache max_size
    parent: str | None = None  # an appliance's PoP; None for a PoP (it fills from the origin)
    isp: str | None = None  # an appliance serves one ISP's subscribers
    host: str = "127.0.0.1"  # where the others on this machine reach it: probes, an appliance's fills
    # The address nginx listens on; empty: ``host``. A wildcard (0.0.0.0 in a container) makes
    # the node reachable from outside, while ``host`` stays the loopback the prober uses.
    bind: str = ""
    # Connections the node serves before steering sends sessions elsewhere (the load the
    # steering server reads from its stub_status is open connections over this).
    max_connections: int = 512

    @property
    def base_url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def listen(self) -> str:
        """nginx's ``listen`` address:port."""
        return f"{url_host(self.bind or self.host)}:{self.port}"


@dataclass(frozen=True)
class Topology:
    origin_url: str  # where PoPs fill from: the origin app (``origin.py``) over the ObjectStore
    nodes: tuple[EdgeNode, ...]
    work_dir: Path  # per-node folders: conf, cache, logs, pid
    segment_max_age_s: int = 31_536_000  # immutable segments: a year
    manifest_max_age_s: int = 2  # media playlists and MPDs: short, refreshed in the background
    manifest_stale_s: int = 300  # stale-while-revalidate window for manifests
    lock_timeout_s: int = 10  # proxy_cache_lock: one fill per object, others wait up to this
    worker_processes: int = 1
    status_allow: tuple[str, ...] = ("127.0.0.1", "::1")  # who may read a node's stub_status (the prober)
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        ports = [n.port for n in self.nodes]
        if len(set(names)) != len(names) or len(set(ports)) != len(ports):
            raise ConfigError(f"edge topology: node names and ports must be unique ({names}, {ports})")
        for node in self.nodes:
            if not node.name.replace("-", "").isalnum() or node.name.lower() != node.name:
                raise ConfigError(f"edge node {node.name!r}: use lowercase letters, digits and '-'")
            if node.tier == "appliance":
                parent = self.node(node.parent) if node.parent else None
                if parent is None or parent.tier != "pop" or not node.isp:
                    raise ConfigError(f"edge node {node.name!r}: an appliance needs an ISP and a PoP parent")
            elif node.parent is not None:
                raise ConfigError(f"edge node {node.name!r}: a PoP fills from the origin, not from {node.parent!r}")
            if node.max_connections < 1:
                raise ConfigError(f"edge node {node.name!r}: max_connections must be at least 1")
            if node.cache_bytes < 16 * 1024**2:
                raise ConfigError(f"edge node {node.name!r}: cache_bytes {node.cache_bytes} is under 16 MiB")

    def node(self, name: str | None) -> EdgeNode | None:
        return next((n for n in self.nodes if n.name == name), None)

    def tier(self, tier: Tier) -> tuple[EdgeNode, ...]:
        return tuple(n for n in self.nodes if n.tier == tier)

    def node_dir(self, node: EdgeNode) -> Path:
        return self.work_dir / node.name


LOOPBACK = ("127.0.0.1", "::1")


def local_topology(origin_url: str, work_dir: Path, base_port: int = 18400,
                   isps: tuple[str, ...] = ("isp-a",), appliance_connections: int = 512,
                   bind: str = "127.0.0.1", pop_host: str | None = None, appliance_host: str | None = None,
                   status_allow: tuple[str, ...] = ()) -> Topology:
    """One machine: a PoP on ``base_port`` and one appliance per ISP on the next ports, all
    listening on ``bind``; ``appliance_connections``: what an appliance serves before steering
    moves sessions away.

    Split over machines (one tier per container, as the compose file runs them), every node
    keeps its port and ``pop_host`` / ``appliance_host`` name where the others reach the PoP
    (an appliance's fills, steering's probes) and the appliances (steering's probes);
    ``status_allow``: the further addresses (CIDRs) that may read a node's stub_status, i.e.
    where the steering server probes from."""
    host = reach_host(check_bind(bind))
    pop = EdgeNode("pop-1", "pop", base_port, 2 * GB, host=check_host(pop_host) if pop_host else host, bind=bind)
    appliances = tuple(EdgeNode(f"appliance-{isp}", "appliance", base_port + 1 + i, 1 * GB, parent=pop.name, isp=isp,
                                max_connections=appliance_connections,
                                host=check_host(appliance_host) if appliance_host else host, bind=bind)
                       for i, isp in enumerate(isps))
    # The prober connects from the address it reaches the nodes at: let it read stub_status.
    allow: tuple[str, ...] = LOOPBACK if host in LOOPBACK else (*LOOPBACK, host)
    allow += tuple(dict.fromkeys(check_network(a) for a in status_allow))
    return Topology(origin_url, (pop, *appliances), work_dir, status_allow=allow)


_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def check_host(host: str) -> str:
    """A host the other tiers reach a node at: a DNS name (a compose service's) or an IP address."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        if _HOSTNAME.match(host):
            return host
    raise ConfigError(f"edge node host {host!r}: not a host name or an IP address")


def check_network(network: str) -> str:
    """An address or CIDR block for nginx's ``allow`` (``10.0.0.0/8``, ``::1``)."""
    try:
        return str(ipaddress.ip_network(network, strict=False))
    except ValueError:
        raise ConfigError(f"edge status allow {network!r}: not an IP address or CIDR block (10.0.0.0/8)") from None
