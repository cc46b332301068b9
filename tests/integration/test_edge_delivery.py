"""The cache tiers on real nginx (Debian's 1.22, run from generated configs on loopback):
a CDN PoP filling from the origin over the ObjectStore, an ISP appliance filling from the
PoP for popular titles only; signed URLs verified at each edge; only encrypted bytes and
no key material anywhere on the edge."""

from __future__ import annotations

import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from reelstream.edge.origin import origin_app
from reelstream.edge.runner import EdgeRunner, find_nginx
from reelstream.edge.signing import EdgeSecret, signed_base
from reelstream.edge.topology import Topology, local_topology
from reelstream.errors import ReelStreamError
from tests.support.browser import build_browser_media, package_for_test, serve
from tests.support.ports import free_port_block

try:
    find_nginx()
    NO_NGINX = None
except ReelStreamError as e:
    NO_NGINX = str(e)
pytestmark = pytest.mark.skipif(NO_NGINX is not None, reason=NO_NGINX or "")
SECRET = EdgeSecret(secrets.token_urlsafe(24))


def counting(app: web.Application, seen: list[str]) -> web.Application:
    """Record every request the origin answers (what the tiers failed to absorb)."""
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(request.path)
        return await handler(request)  # type: ignore[no-any-return]
    app.middlewares.append(record)
    return app


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from reelstream.config import Settings
    from reelstream.keys.kek import AesGcmKek
    from reelstream.keys.service import KeyService
    from reelstream.runtime import Runtime

    root = tmp_path_factory.mktemp("edge")
    media = build_browser_media(root / "media")
    runtime = Runtime(Settings(data_dir=root / "reel"))
    keys = KeyService(runtime.state, AesGcmKek(secrets.token_bytes(32)), runtime.publish, producer="test")
    popular = package_for_test(runtime, keys, "t-popular", "cenc", media)
    tail = package_for_test(runtime, keys, "t-tail", "cenc", media)
    origin_hits: list[str] = []
    with serve(counting(origin_app(runtime.objects), origin_hits)) as origin:
        topology = local_topology(origin, root / "edge", base_port=free_port_block(2))
        with EdgeRunner(topology, SECRET, popular=["t-popular"]) as runner:
            yield {"topology": topology, "runner": runner, "runtime": runtime, "keys": keys, "origin": origin,
                   "origin_hits": origin_hits, "popular": popular, "tail": tail, "root": root}
    runtime.close()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def node_url(topology: Topology, name: str) -> str:
    node = topology.node(name)
    assert node is not None
    return node.base_url


def test_segments_fill_pop_then_appliance_and_then_hit(edge: dict[str, Any]) -> None:
    topo, package = edge["topology"], edge["popular"]
    track = next(t for t in package.tracks if t.kind == "video")
    key = track.media_key(2)
    base = signed_base(node_url(topo, "appliance-isp-a"), SECRET, package.storage_prefix, int(time.time()) + 60)
    status, headers, body = get(base + key + "?CMCD=" + urllib.parse.quote('ot=v,sid="s-1"'))
    assert status == 200 and headers["X-Cache-Status"] == "MISS" and headers["X-Edge-Node"] == "appliance-isp-a"
    assert headers["Content-Type"] == "video/mp4" and "immutable" in headers["Cache-Control"]
    assert body == edge["runtime"].objects.get(package.storage_prefix + key)
    # Another viewer's token (another expiry) hits the same entry: the key has no token in it.
    other = signed_base(node_url(topo, "appliance-isp-a"), SECRET, package.storage_prefix, int(time.time()) + 120)
    status, headers, again = get(other + key, {"Range": "bytes=0-99"})
    assert (status, headers["X-Cache-Status"], again) == (206, "HIT", body[:100])
    assert headers["ETag"].strip('"') == edge["runtime"].objects.head(package.storage_prefix + key).sha256
    # The PoP filled once from the origin and now holds it too.
    pop = signed_base(node_url(topo, "pop-1"), SECRET, package.storage_prefix, int(time.time()) + 60)
    assert get(pop + key)[1]["X-Cache-Status"] == "HIT"
    assert edge["origin_hits"].count("/" + package.storage_prefix + key) == 1


def test_long_tail_titles_pass_through_the_appliance_without_being_stored(edge: dict[str, Any]) -> None:
    topo, package = edge["topology"], edge["tail"]
    key = next(t for t in package.tracks if t.kind == "video").media_key(1)
    base = signed_base(node_url(topo, "appliance-isp-a"), SECRET, package.storage_prefix, int(time.time()) + 60)
    for _ in range(2):
        status, headers, _ = get(base + key)
        assert (status, headers["X-Cache-Status"]) == (200, "BYPASS")
    pop = signed_base(node_url(topo, "pop-1"), SECRET, package.storage_prefix, int(time.time()) + 60)
    assert get(pop + key)[1]["X-Cache-Status"] == "HIT"  # the PoP holds the long tail


def test_concurrent_misses_collapse_into_one_origin_fill(edge: dict[str, Any]) -> None:
    topo, package = edge["topology"], edge["popular"]
    key = next(t for t in package.tracks if t.kind == "audio").media_key(3)
    base = signed_base(node_url(topo, "pop-1"), SECRET, package.storage_prefix, int(time.time()) + 60)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: get(base + key), range(16)))
    assert {r[0] for r in results} == {200} and len({r[2] for r in results}) == 1
    assert edge["origin_hits"].count("/" + package.storage_prefix + key) == 1


@pytest.mark.parametrize("node", ["pop-1", "appliance-isp-a"])
def test_the_edge_refuses_tampered_expired_and_unsigned_urls(edge: dict[str, Any], node: str) -> None:
    topo, package = edge["topology"], edge["popular"]
    key = next(t for t in package.tracks if t.kind == "video").media_key(1)
    url = node_url(topo, node)
    good = signed_base(url, SECRET, package.storage_prefix, int(time.time()) + 60)
    assert get(good + key)[0] == 200
    token, expires = good.removeprefix(url + "/s/").split("/")[:2]
    forged = signed_base(url, EdgeSecret("not-the-edge-secret"), package.storage_prefix, int(expires))
    other_title = good.replace("/packages/t-popular/", "/packages/t-tail/")
    longer = good.replace(f"/{expires}/", f"/{int(expires) + 3600}/")
    for bad in (forged, other_title, longer, good.replace(token, token[::-1])):
        assert get(bad + key)[0] == 403, bad
    expired = signed_base(url, SECRET, package.storage_prefix, int(time.time()) - 1)
    assert get(expired + key)[0] == 410
    assert get(url + "/" + package.storage_prefix + key)[0] == 403
    assert get(url + "/" + package.storage_prefix + "package.json")[0] == 403


def test_manifests_from_the_origin_are_short_lived_with_stale_while_revalidate(edge: dict[str, Any]) -> None:
    topo, package = edge["topology"], edge["popular"]
    base = signed_base(node_url(topo, "pop-1"), SECRET, package.storage_prefix, int(time.time()) + 60)
    status, headers, body = get(base + "hls/chromium-clearkey/h264-360p-800k.m3u8")
    assert status == 200 and headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert "stale-while-revalidate=300" in headers["Cache-Control"]
    assert b'#EXT-X-MAP:URI="../../h264-360p-800k/init.mp4"' in body



def test_what_names_no_object_or_no_offered_track_is_a_404_not_a_500(edge: dict[str, Any]) -> None:
    package, origin = edge["popular"], edge["origin"]
    for path in (package.storage_prefix, package.storage_prefix + "h264-360p-800k/",
                 package.storage_prefix + "hls/chromium-clearkey/no-such-track.m3u8"):
        status, _, body = get(f"{origin}/{path}")
        assert status == 404, (path, status, body[:200])


def cache_bodies(topology: Topology) -> dict[str, bytes]:
    """Every object in every node's nginx cache: its cache key -> the body bytes stored."""
    found = {}
    for path in topology.work_dir.glob("*/cache/**/*"):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        start = raw.index(b"\nKEY: ") + 6
        key = raw[start:raw.index(b"\n", start)].decode()
        node = path.relative_to(topology.work_dir).parts[0]
        found[f"{node}:{key}"] = raw[raw.index(b"\r\n\r\n", start) + 4:]
    return found


def test_the_tiers_hold_only_encrypted_bytes_and_no_key_material(edge: dict[str, Any], tmp_path: Path) -> None:
    from tests.integration.test_key_scan import find
    from tests.support.media_fixtures import framemd5

    topo, package = edge["topology"], edge["popular"]
    base = signed_base(node_url(topo, "appliance-isp-a"), SECRET, package.storage_prefix, int(time.time()) + 60)
    video = next(t for t in package.tracks if t.kind == "video" and t.key_class == "SD")
    for key in [video.init] + [video.media_key(s.number) for s in video.segments]:
        assert get(base + key)[0] == 200
    cached = cache_bodies(topo)
    prefix = "/" + package.storage_prefix
    for node in ("pop-1", "appliance-isp-a"):
        joined = tmp_path / f"{node}.mp4"
        joined.write_bytes(cached[f"{node}:{prefix}{video.init}"] + b"".join(
            cached[f"{node}:{prefix}{video.media_key(s.number)}"] for s in video.segments))
        content_key = edge["keys"].key_for_kid(package.title_id, video.key_id)
        clear = framemd5(joined, key=content_key.key)  # the cached bytes are the real track...
        assert len(clear) >= 12
        without_key = framemd5(joined, strict=False)  # ...and nothing decodes to it without the key
        assert not set(clear) & set(without_key), f"{node}: frames decode as clear media without the key"
    secrets_ = {f"{t.track_id} key": edge["keys"].key_for_kid(package.title_id, t.key_id).key
                for t in package.tracks if t.key_id}
    hits = []
    for path in topo.work_dir.rglob("*"):
        if path.is_file():
            hits += find(secrets_, str(path.relative_to(topo.work_dir)), path.read_bytes())
    assert hits == []
