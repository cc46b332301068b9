"""Pure parts of the edge: nginx configs against expected files, signed URLs, origin helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reelstream.edge import nginx
from reelstream.edge.origin import parse_range
from reelstream.edge.signing import (
    EdgeSecret,
    SignedUrlExpired,
    SignedUrlRefused,
    signed_base,
    token,
    verify,
)
from reelstream.edge.topology import EdgeNode, Topology, local_topology
from reelstream.errors import ConfigError

GOLDEN = Path(__file__).parents[2] / "golden" / "edge"
SECRET = EdgeSecret("edge-secret-for-tests")


def topology() -> Topology:
    return local_topology("http://127.0.0.1:18399", Path("/var/reel/edge"), base_port=18400)


@pytest.mark.parametrize("node", ["pop-1", "appliance-isp-a"])
def test_each_nodes_config_is_the_expected_file(node: str) -> None:
    topo = topology()
    text = nginx.render_config(topo, topo.node(node), SECRET)  # type: ignore[arg-type]
    expected = GOLDEN / f"{node}.conf"
    if os.environ.get("REEL_UPDATE_GOLDEN"):
        expected.write_text(text)
    assert text == expected.read_text()


def test_the_popularity_map_lists_titles_once_and_skips_unsafe_names() -> None:
    assert nginx.render_popular_map(["t-2", "t-1", "t-2", 'x" 1; include /etc/passwd']).splitlines()[1:] == [
        '"title:t-1" 0;', '"title:t-2" 0;']


def test_the_command_line_points_nginx_at_the_node_folder() -> None:
    topo = topology()
    pop = topo.node("pop-1")
    assert nginx.command("/usr/sbin/nginx", topo, pop, test_only=True) == [  # type: ignore[arg-type]
        "/usr/sbin/nginx", "-t", "-q", "-p", "/var/reel/edge/pop-1/", "-c", "/var/reel/edge/pop-1/nginx.conf"]


def test_topology_refuses_orphan_appliances_and_duplicate_ports() -> None:
    pop = EdgeNode("pop-1", "pop", 1, 2**30)
    with pytest.raises(ConfigError, match="appliance needs an ISP and a PoP parent"):
        Topology("http://o", (pop, EdgeNode("app", "appliance", 2, 2**30)), Path("/tmp"))
    with pytest.raises(ConfigError, match="unique"):
        Topology("http://o", (pop, EdgeNode("pop-2", "pop", 1, 2**30)), Path("/tmp"))


def test_a_signed_url_verifies_and_names_the_object() -> None:
    base = signed_base("http://edge", SECRET, "packages/t1/p1/", 2000)
    assert base.startswith("http://edge/s/") and base.endswith("/2000/packages/t1/p1/")
    assert verify(SECRET, base.removeprefix("http://edge") + "v/seg-00001.m4s", now=1999) == \
        "/packages/t1/p1/v/seg-00001.m4s"


def test_tampered_and_expired_urls_are_refused() -> None:
    path = signed_base("", SECRET, "packages/t1/p1/", 2000) + "v/seg-00001.m4s"
    with pytest.raises(SignedUrlExpired):
        verify(SECRET, path, now=2001)
    for bad in (path.replace("/t1/", "/t2/"), path.replace("/2000/", "/2999/"),
                path.replace(path.split("/")[2], token(SECRET, "/packages/t2/", 2000))):
        with pytest.raises(SignedUrlRefused, match="tampered"):
            verify(SECRET, bad, now=1000)
    with pytest.raises(SignedUrlRefused):
        verify(EdgeSecret("another-secret-16c"), path, now=1000)
    with pytest.raises(SignedUrlRefused, match="not a signed"):
        verify(SECRET, "/packages/t1/p1/v/seg-00001.m4s", now=1000)


def test_the_token_is_nginx_secure_link_md5_of_expiry_scope_and_secret() -> None:
    # echo -n '2000/packages/t1/ edge-secret-for-tests' | openssl md5 -binary | base64 | tr +/ -_ | tr -d =
    assert token(SECRET, "/packages/t1/", 2000) == "yJb8XfRcFC6KrOdh-B1V1Q"


@pytest.mark.parametrize(("header", "size", "expected"), [
    ("bytes=0-9", 100, (0, 9)), ("bytes=90-", 100, (90, 99)), ("bytes=-10", 100, (90, 99)),
    ("bytes=50-500", 100, (50, 99))])
def test_origin_ranges(header: str, size: int, expected: tuple[int, int]) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=5-1", "bytes=0-1,3-4", "items=0-1"])
def test_origin_refuses_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(ValueError):
        parse_range(header, 100)
