"""``reel edge up --host 0.0.0.0 --origin-url ...`` run as the compose file runs it: the
origin in one process (``--origin-only``), the nginx tiers and the steering server in
another, filling from it. Fetched on 127.0.0.2, an address a loopback-only listener
(127.0.0.1) does not answer on: the tiers listen on every interface."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from reelstream.edge.signing import EdgeSecret, signed_base
from reelstream.stores.localdir import LocalDirObjectStore
from tests.integration.test_edge_delivery import NO_NGINX
from tests.support.ports import free_port, free_port_block

pytestmark = pytest.mark.skipif(NO_NGINX is not None, reason=NO_NGINX or "")
OTHER_ADDRESS = "127.0.0.2"  # on the host, but not the 127.0.0.1 the tiers used to bind
COMPOSE = Path(__file__).resolve().parents[2] / "infra" / "docker-compose.yml"


def compose_check(service: str, ports: dict[int, int]) -> int:
    """``service``'s compose health check (a python command), its container ports mapped to
    ``ports``; its exit status."""
    test = yaml.safe_load(COMPOSE.read_text())["services"][service]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"], test
    code = test[3]
    for container_port, port in ports.items():
        code = code.replace(str(container_port), str(port))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=20, check=False).returncode


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def reel(tmp_path: Path) -> Iterator[tuple[list[subprocess.Popen[bytes]], dict[str, str]]]:
    env = {**os.environ, "REEL_DATA_DIR": str(tmp_path / "data"), "REEL_EDGE_SECRET": secrets.token_urlsafe(24)}
    started: list[subprocess.Popen[bytes]] = []
    yield started, env
    for process in started:
        process.send_signal(signal.SIGTERM)  # as `docker stop` does; the edge stops its nginx
    for process in started:
        process.wait(20)


def test_the_tiers_listen_on_the_bind_address_and_fill_from_the_given_origin(
        tmp_path: Path, reel: tuple[list[subprocess.Popen[bytes]], dict[str, str]]) -> None:
    started, env = reel
    segment = secrets.token_bytes(200_000)
    LocalDirObjectStore(tmp_path / "data" / "objects").put("packages/t1/p1/v/seg-1.m4s", segment,
                                                          content_type="video/mp4")
    origin_base, edge_base = free_port_block(2) + 1, free_port_block(4) + 2
    cli = [sys.executable, "-m", "reelstream.cli", "edge", "up"]
    started.append(subprocess.Popen([*cli, "--origin-only", "--for-tiers", "--host", "0.0.0.0", "--base-port", str(origin_base)],
                                    env=env, stdout=subprocess.DEVNULL))
    origin_url = f"http://{OTHER_ADDRESS}:{origin_base - 1}"
    started.append(subprocess.Popen([*cli, "--host", "0.0.0.0", "--origin-url", origin_url, "--base-port",
                                     str(edge_base), "--work-dir", str(tmp_path / "edge"), "--popular", "t1"],
                                    env=env, stdout=subprocess.DEVNULL))
    deadline = time.monotonic() + 30
    ready = [f"http://{OTHER_ADDRESS}:{p}/healthz" for p in (origin_base - 1, edge_base, edge_base + 1)]
    ready.append(f"http://{OTHER_ADDRESS}:{edge_base - 2}/steering?session=s0")  # started last
    while not all(answers(url) for url in ready):
        assert all(p.poll() is None for p in started), "reel edge up exited"
        assert time.monotonic() < deadline, "the tiers did not answer on 127.0.0.2"
        time.sleep(0.1)

    secret = EdgeSecret(env["REEL_EDGE_SECRET"])
    served = []
    for port in (edge_base + 1, edge_base, edge_base + 1):  # appliance (fills from the PoP), PoP, appliance
        url = signed_base(f"http://{OTHER_ADDRESS}:{port}", secret, "packages/t1/p1/", int(time.time()) + 60)
        with urllib.request.urlopen(url + "v/seg-1.m4s", timeout=5) as r:
            assert r.read() == segment
            served.append((r.headers["X-Edge-Node"], r.headers["X-Cache-Status"]))
    assert served == [("appliance-isp-a", "MISS"), ("pop-1", "HIT"), ("appliance-isp-a", "HIT")]
    with urllib.request.urlopen(f"http://{OTHER_ADDRESS}:{edge_base - 2}/steering?session=s1&title=t1&isp=isp-a",
                                timeout=5) as r:
        assert r.status == 200  # the steering server listens there too
    # The compose file's health checks for the two services pass against these two processes.
    assert compose_check("origin", {18399: origin_base - 1}) == 0
    assert compose_check("edge", {18400: edge_base, 18401: edge_base + 1}) == 0
    assert compose_check("edge", {18400: edge_base, 18401: free_port()}) != 0  # one tier down: unhealthy
