"""``start_edge`` as ``reel up`` runs it: origin, PoP, appliance and the steering server;
the steering server ranks tiers per session; CMCD from edge logs becomes events."""

from __future__ import annotations

import json
import secrets
import socket
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reelstream.edge import start_edge
from reelstream.edge.signing import EdgeSecret, signed_base
from reelstream.edge.steering import NodeHealth
from reelstream.events.model import Event
from reelstream.processors.popularity.logic import PopularityProcessor
from reelstream.stores.localdir import LocalDirObjectStore
from tests.integration.test_edge_delivery import NO_NGINX
from tests.support.memory_state import MemoryState
from tests.support.ports import free_port_block
from tests.unit.edge.test_steering_and_processors import _started as started
from tests.unit.edge.test_steering_and_processors import apply

pytestmark = pytest.mark.skipif(NO_NGINX is not None, reason=NO_NGINX or "")


def fetch_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_steering_and_cmcd_through_a_started_edge(tmp_path: Path) -> None:
    objects = LocalDirObjectStore(tmp_path / "objects")
    for title in ("t-hit", "t-rare"):
        objects.put(f"packages/{title}/p1/v/seg-00001.m4s", secrets.token_bytes(5000), content_type="video/mp4")
    secret = EdgeSecret(secrets.token_urlsafe(24))
    stack = start_edge(objects, tmp_path / "edge", secret, popular=["t-hit"], base_port=free_port_block(4) + 2,
                       appliance_connections=8, probe_interval_s=0.2)
    try:
        steer = stack.steering_url + "/steering?"
        popular = fetch_json(steer + urllib.parse.urlencode({"session": "s1", "title": "t-hit", "isp": "isp-a"}))
        assert popular["VERSION"] == 1 and popular["TTL"] > 0
        assert popular["PATHWAY-PRIORITY"] == ["appliance-isp-a", "pop-1"]
        tail = fetch_json(steer + urllib.parse.urlencode({"session": "s2", "title": "t-rare", "isp": "isp-a",
                                                          "_DASH_pathway": "pop-1", "_DASH_throughput": "9000000"}))
        assert tail["PATHWAY-PRIORITY"] == ["pop-1"]
        assert "_DASH_pathway" not in tail["RELOAD-URI"]

        appliance = stack.topology.node("appliance-isp-a")
        assert appliance is not None
        url = signed_base(appliance.base_url, secret, "packages/t-hit/p1/", int(time.time()) + 60)
        cmcd = urllib.parse.quote('bl=4000,br=800,mtp=12000,ot=v,sid="s1"')
        with urllib.request.urlopen(f"{url}v/seg-00001.m4s?CMCD={cmcd}") as r:
            assert r.status == 200
        events: list[Event] = []
        deadline = time.monotonic() + 10
        while not events and time.monotonic() < deadline:  # nginx writes its log line after the response
            stack.ship_logs(events.append)
            time.sleep(0.05)
        served = [e for e in events if e["session_id"] == "s1"]
        assert len(served) == 1
        assert (served[0]["node"], served[0]["title_id"], served[0]["buffer_ms"], served[0]["cache_status"]) == \
            ("appliance-isp-a", "t-hit", 4000, "MISS")
        assert stack.ship_logs(events.append) == 0  # each line is shipped once

        # The popularity processor's list reaches the appliance and the steering server.
        state = MemoryState()
        for title in ("t-rare", "t-rare", "t-hit"):  # the long-tail title is now watched more
            apply(PopularityProcessor(), state, started(title, datetime.now(UTC)))
        assert stack.refresh_popular(state, top_n=1) and stack.steering_state.popular == {"t-rare"}
        assert not stack.refresh_popular(state, top_n=1), "unchanged: no reload"
        assert fetch_json(steer + urllib.parse.urlencode({"session": "s4", "title": "t-rare", "isp": "isp-a"})
                          )["PATHWAY-PRIORITY"] == ["appliance-isp-a", "pop-1"]

        stack.set_popular([])  # the title fell off the list: the appliance now passes it through
        tail_now = fetch_json(steer + urllib.parse.urlencode({"session": "s3", "title": "t-hit", "isp": "isp-a"}))
        assert tail_now["PATHWAY-PRIORITY"] == ["pop-1"]
        with urllib.request.urlopen(f"{url}v/seg-00001.m4s") as r:
            assert r.headers["X-Cache-Status"] == "BYPASS"
    finally:
        stack.stop()


def ranked(stack: Any, until: list[str]) -> list[str]:
    """The steering answer for a popular title's session once it is ``until`` (the probes run
    every 0.2 s; the deadline only bounds a broken probe)."""
    url = stack.steering_url + "/steering?" + urllib.parse.urlencode({"session": "s9", "title": "t-hit",
                                                                        "isp": "isp-a"})
    deadline = time.monotonic() + 15
    while (priority := fetch_json(url)["PATHWAY-PRIORITY"]) != until and time.monotonic() < deadline:
        time.sleep(0.1)
    return priority  # type: ignore[no-any-return]


def test_steering_reads_load_and_health_from_the_nginx_nodes_themselves(tmp_path: Path) -> None:
    objects = LocalDirObjectStore(tmp_path / "objects")
    stack = start_edge(objects, tmp_path / "edge", EdgeSecret(secrets.token_urlsafe(24)), popular=["t-hit"],
                       base_port=free_port_block(4) + 2, appliance_connections=8, probe_interval_s=0.2)
    appliance = stack.topology.node("appliance-isp-a")
    assert appliance is not None
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 15
        while len(stack.steering_state.health) < 2 and time.monotonic() < deadline:  # the first probes
            time.sleep(0.05)
        assert ranked(stack, ["appliance-isp-a", "pop-1"]) == ["appliance-isp-a", "pop-1"]
        assert stack.steering_state.health["appliance-isp-a"] == NodeHealth(healthy=True, load=0.0)
        # Connections nginx counts as open (stub_status), past 85 % of the appliance's 8.
        held = [socket.create_connection((appliance.host, appliance.port)) for _ in range(9)]
        assert ranked(stack, ["pop-1", "appliance-isp-a"]) == ["pop-1", "appliance-isp-a"], "overloaded: last"
        assert stack.steering_state.health["appliance-isp-a"].load >= 1.0
        for s in held:
            s.close()
        assert ranked(stack, ["appliance-isp-a", "pop-1"]) == ["appliance-isp-a", "pop-1"], "back when calm"
        stack.runner.stop(["appliance-isp-a"])  # taken out of service: its probe fails
        assert ranked(stack, ["pop-1"]) == ["pop-1"]
        assert not stack.steering_state.health["appliance-isp-a"].healthy
    finally:
        for s in held:
            s.close()
        stack.stop()
