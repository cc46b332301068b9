"""Where the edge listens (``reel edge up --host`` / REEL_EDGE_HOST) and where this machine
reaches it: nginx's ``listen``, the nodes' URLs, fills and the prober's stub_status access."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.cli import build_parser
from reelstream.config import Settings, load_settings
from reelstream.edge import nginx
from reelstream.edge.signing import EdgeSecret
from reelstream.edge.topology import EdgeNode, Topology, local_topology
from reelstream.errors import ConfigError

SECRET = EdgeSecret("edge-secret-for-tests")


def configs(bind: str) -> tuple[Topology, str, str]:
    topo = local_topology("http://origin:18399", Path("/var/reel/edge"), base_port=18400, bind=bind)
    pop, appliance = topo.node("pop-1"), topo.node("appliance-isp-a")
    assert isinstance(pop, EdgeNode) and isinstance(appliance, EdgeNode)
    return topo, nginx.render_config(topo, pop, SECRET), nginx.render_config(topo, appliance, SECRET)


def test_a_wildcard_listens_on_every_interface_and_is_reached_on_the_loopback() -> None:
    topo, pop, appliance = configs("0.0.0.0")
    assert "    listen 0.0.0.0:18400;" in pop and "    listen 0.0.0.0:18401;" in appliance
    assert [n.base_url for n in topo.nodes] == ["http://127.0.0.1:18400", "http://127.0.0.1:18401"]
    assert "server origin:18399;" in pop  # the PoP fills from the origin it was given
    assert "server 127.0.0.1:18400;" in appliance  # the appliance from its PoP, on this machine
    assert topo.status_allow == ("127.0.0.1", "::1")


def test_one_address_is_listened_on_and_reached_and_the_prober_may_read_status() -> None:
    topo, pop, appliance = configs("192.0.2.7")
    assert "    listen 192.0.2.7:18400;" in pop and "server 192.0.2.7:18400;" in appliance
    assert topo.nodes[0].base_url == "http://192.0.2.7:18400"
    assert "allow 192.0.2.7;" in pop  # the prober connects from that address, not the loopback


def test_ipv6_addresses_are_bracketed() -> None:
    topo, pop, _ = configs("::")
    assert "    listen [::]:18400;" in pop and topo.nodes[0].base_url == "http://[::1]:18400"


def test_the_loopback_default_is_unchanged() -> None:
    _, pop, _ = configs("127.0.0.1")
    assert "    listen 127.0.0.1:18400;" in pop


def test_a_host_name_is_refused_with_the_setting_named() -> None:
    with pytest.raises(ConfigError, match="REEL_EDGE_HOST or --host = 'edge.example'"):
        local_topology("http://o:1", Path("/tmp"), bind="edge.example")
    with pytest.raises(ConfigError, match=r"edge_host \(REEL_EDGE_HOST\) = 'localhost': not an IP address"):
        Settings(edge_host="localhost")
    assert load_settings({"REEL_EDGE_HOST": "0.0.0.0"}).edge_host == "0.0.0.0"
    assert Settings().edge_host == "127.0.0.1"


def test_edge_up_takes_the_bind_address_and_an_origin_to_fill_from() -> None:
    args = build_parser().parse_args(["edge", "up", "--host", "0.0.0.0", "--origin-url", "http://origin:18399/"])
    assert (args.host, args.origin_url) == ("0.0.0.0", "http://origin:18399")
    assert build_parser().parse_args(["edge", "up"]).host is None  # then REEL_EDGE_HOST, else the loopback
    for bad in ("origin:18399", "http://origin", "http://origin:18399/packages", "https://origin:443"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["edge", "up", "--origin-url", bad])
