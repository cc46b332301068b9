"""Title ids are free to be nginx ``map`` keywords ("default", "include", "hostnames"): on the
appliance's popularity list they must still make a config that nginx accepts."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from reelstream.edge import nginx
from reelstream.edge.runner import EdgeRunner, find_nginx
from reelstream.edge.signing import EdgeSecret
from reelstream.edge.topology import local_topology
from reelstream.ingest.metadata import _TITLE_ID as TITLE_ID
from tests.integration.test_edge_delivery import NO_NGINX

pytestmark = pytest.mark.skipif(NO_NGINX is not None, reason=NO_NGINX or "")


@pytest.mark.parametrize("title", ["default", "include", "hostnames", "volatile"])
def test_a_popular_title_named_like_a_map_keyword_keeps_the_config_valid(tmp_path: Path, title: str) -> None:
    assert TITLE_ID.match(title)  # a title id ReelStream accepts at ingest
    topology = local_topology("http://127.0.0.1:9", tmp_path, base_port=18400)
    runner = EdgeRunner(topology, EdgeSecret(secrets.token_urlsafe(24)), popular=[title, "t-1"])
    appliance = topology.node("appliance-isp-a")
    assert appliance is not None
    runner.write(appliance)
    checked = subprocess.run(nginx.command(find_nginx(), topology, appliance, test_only=True),
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr


def test_a_list_nginx_refuses_is_not_loaded_and_the_old_one_stays(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from reelstream.edge import start_edge
    from reelstream.stores.localdir import LocalDirObjectStore
    from tests.support.memory_state import MemoryState
    from tests.support.ports import free_port_block

    stack = start_edge(LocalDirObjectStore(tmp_path / "objects"), tmp_path / "edge",
                       EdgeSecret(secrets.token_urlsafe(24)), popular=["t-old"],
                       base_port=free_port_block(4) + 2, probe_interval_s=0)
    try:
        appliance = stack.topology.node("appliance-isp-a")
        assert appliance is not None
        popular_map = stack.topology.node_dir(appliance) / "popular.map"
        before = popular_map.read_text()
        # No title id can make a map nginx refuses any more: inject one to reach the guard.
        monkeypatch.setattr(nginx, "render_popular_map", lambda titles: "this is not nginx syntax\n")
        state = MemoryState()
        monkeypatch.setattr("reelstream.edge.stack.popular_titles", lambda rows, top_n: ["t-new"])
        assert not stack.refresh_popular(state)
        assert popular_map.read_text() == before
        assert stack.runner.popular == ("t-old",) and stack.steering_state.popular == {"t-old"}
        assert stack.runner.processes[appliance.name].poll() is None, "the appliance still serves"
    finally:
        stack.stop()
