"""An edge runner killed with SIGKILL leaves its nginx running (in a session of its own, on
the node's port); the next run stops that nginx and serves, instead of failing to bind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reelstream.edge.runner import EdgeRunner
from reelstream.edge.topology import local_topology
from tests.integration.test_edge_delivery import NO_NGINX, SECRET
from tests.support.ports import free_port_block

pytestmark = pytest.mark.skipif(NO_NGINX is not None, reason=NO_NGINX or "")


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_a_new_run_stops_the_nginx_a_killed_run_left_behind(tmp_path: Path) -> None:
    topology = local_topology("http://127.0.0.1:9", tmp_path / "edge", base_port=free_port_block(2))
    orphaned = EdgeRunner(topology, SECRET).start()  # its owner is "killed": stop() never runs
    left = {name: p.pid for name, p in orphaned.processes.items()}
    assert all(alive(pid) for pid in left.values())
    try:
        with EdgeRunner(topology, SECRET) as runner:
            assert not any(alive(pid) for pid in left.values()), "the earlier run's nginx was stopped"
            assert all(p.poll() is None for p in runner.processes.values())
    finally:
        for pid in left.values():
            if alive(pid):
                os.killpg(pid, 9)
        for process in orphaned.processes.values():
            process.wait(5)
