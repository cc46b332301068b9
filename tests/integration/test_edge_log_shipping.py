"""Shipping the edges' access logs as events, across a hostile CMCD value and restarts of the
stack: each line is shipped once, and one bad line does not stop the ones after it."""

from __future__ import annotations

import secrets
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from reelstream.edge import start_edge
from reelstream.edge.signing import EdgeSecret, signed_base
from reelstream.edge.stack import EdgeStack
from reelstream.events.codec import EventCodec
from reelstream.events.model import Event
from reelstream.stores.localdir import LocalDirObjectStore
from tests.integration.test_edge_delivery import NO_NGINX
from tests.support.ports import free_port_block

pytestmark = pytest.mark.skipif(NO_NGINX is not None, reason=NO_NGINX or "")


def request(stack: EdgeStack, secret: EdgeSecret, cmcd: str) -> None:
    pop = stack.topology.node("pop-1")
    assert pop is not None
    url = signed_base(pop.base_url, secret, "packages/t1/p1/", int(time.time()) + 60)
    with urllib.request.urlopen(f"{url}v/seg-00001.m4s?CMCD={urllib.parse.quote(cmcd)}") as r:
        assert r.status == 200


def ship(stack: EdgeStack, expected: int) -> list[Event]:
    """What the stack ships until ``expected`` events came (nginx logs after it answers)."""
    codec, events = EventCodec(), list[Event]()
    deadline = time.monotonic() + 10
    while len(events) < expected and time.monotonic() < deadline:
        stack.ship_logs(lambda e: events.append(codec.decode(codec.encode(e))))
        time.sleep(0.05)
    stack.save_log_offsets()
    return events


def test_a_hostile_cmcd_value_ships_and_restarts_ship_nothing_twice(tmp_path: Path) -> None:
    objects = LocalDirObjectStore(tmp_path / "objects")
    objects.put("packages/t1/p1/v/seg-00001.m4s", secrets.token_bytes(1000), content_type="video/mp4")
    secret, work, port = EdgeSecret(secrets.token_urlsafe(24)), tmp_path / "edge", free_port_block(4) + 2
    stack = start_edge(objects, work, secret, base_port=port, probe_interval_s=0)
    try:
        for cmcd in ('br=800,sid="s1"', 'br=nan,sid="s1"', 'bl=1e999,sid="s1"', 'br=900,sid="s1"'):
            request(stack, secret, cmcd)
        events = ship(stack, 4)
        assert [e["bitrate_kbps"] for e in events] == [800, None, None, 900]
    finally:
        stack.stop()

    stack = start_edge(objects, work, secret, base_port=port, probe_interval_s=0)
    try:
        assert stack.ship_logs(lambda e: None) == 0, "a restart must not ship the log again"
        request(stack, secret, 'br=1200,sid="s2"')
        assert [e["session_id"] for e in ship(stack, 1)] == ["s2"]
    finally:
        stack.stop()

    log = work / "pop-1" / "logs" / "access.log"
    log.rename(log.with_name("access.log.1"))  # rotated while the stack was down: a new file
    stack = start_edge(objects, work, secret, base_port=port, probe_interval_s=0)
    try:
        request(stack, secret, 'br=1500,sid="s3"')
        assert [e["session_id"] for e in ship(stack, 1)] == ["s3"]
    finally:
        stack.stop()
