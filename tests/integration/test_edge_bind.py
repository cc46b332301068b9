"""The compose file's delivery services run here with their own command lines: the origin
(``--origin-only --for-tiers``), the PoP with the steering server (``--tier pop``) and the ISP
appliance (``--tier appliance``), each a process of its own, chained appliance -> PoP ->
origin, the other services' names replaced by 127.0.0.2 (an address a loopback-only
listener, 127.0.0.1, does not answer on: the tiers listen on every interface)."""

from __future__ import annotations

import json
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


def compose_command(service: str, base_port: int, work_dir: Path) -> list[str]:
    """``service``'s compose command as this machine runs it: the embedded runtime instead of
    the servers, the other services' names as OTHER_ADDRESS, ``base_port`` for 18400 (every
    service keeps the same block, as in compose), the work dir in ``work_dir``."""
    command = yaml.safe_load(COMPOSE.read_text())["services"][service]["command"]
    assert command[:3] == ["reel", "edge", "up"], command
    out: list[str] = []
    for word in command[3:]:
        if word in ("--kafka", "--cassandra", "--s3"):
            continue
        if out and out[-1] == "--work-dir":
            word = str(work_dir)
        elif out and out[-1] == "--base-port":
            word = str(base_port)
        elif out and out[-1] in ("--pop-host", "--appliance-host"):
            word = OTHER_ADDRESS
        elif word.startswith("http://origin:"):
            word = f"http://{OTHER_ADDRESS}:{base_port - 1}"
        out.append(word)
    return [sys.executable, "-m", "reelstream.cli", "edge", "up", *out]


def compose_env(service: str, env: dict[str, str]) -> dict[str, str]:
    """Only what ``service``'s compose environment holds (without the server addresses: the
    embedded runtime runs here) beside PATH and the data dir: no key reaches the tiers."""
    named = set(yaml.safe_load(COMPOSE.read_text())["services"][service]["environment"])
    assert not named & {"REEL_KEK", "REEL_GATEWAY_SIGNING_KEYS", "REEL_S3_SECRET_KEY"}
    return {"PATH": env["PATH"], "REEL_DATA_DIR": env["REEL_DATA_DIR"],
            **{k: v for k, v in env.items() if k in named and not k.startswith(("REEL_KAFKA", "REEL_CASSANDRA"))}}


def test_the_compose_tiers_chain_appliance_pop_origin_each_on_the_bind_address(
        tmp_path: Path, reel: tuple[list[subprocess.Popen[bytes]], dict[str, str]]) -> None:
    started, env = reel
    segment = secrets.token_bytes(200_000)
    LocalDirObjectStore(tmp_path / "data" / "objects").put("packages/t1/p1/v/seg-1.m4s", segment,
                                                          content_type="video/mp4")
    base = free_port_block(4) + 2  # steering base-2, origin base-1, PoP base, appliance base+1
    started.append(subprocess.Popen(compose_command("origin", base, tmp_path / "origin"), env=env,
                                    stdout=subprocess.DEVNULL))
    # The titles the appliance keeps come from the popularity processor; here, pinned.
    for service in ("pop", "appliance"):  # as compose starts them: the appliance once the PoP answers
        started.append(subprocess.Popen([*compose_command(service, base, tmp_path / service), "--popular", "t1"],
                                        env=compose_env(service, env), stdout=subprocess.DEVNULL))
    deadline = time.monotonic() + 45
    ready = [f"http://{OTHER_ADDRESS}:{p}/healthz" for p in (base - 1, base, base + 1)]
    ready.append(f"http://{OTHER_ADDRESS}:{base - 2}/steering?session=s0")
    while not all(answers(url) for url in ready):
        assert all(p.poll() is None for p in started), "a reel edge up exited"
        assert time.monotonic() < deadline, "the tiers did not answer on 127.0.0.2"
        time.sleep(0.1)

    secret = EdgeSecret(env["REEL_EDGE_SECRET"])
    served = []
    for port in (base + 1, base, base + 1):  # appliance (fills from the PoP), PoP, appliance
        url = signed_base(f"http://{OTHER_ADDRESS}:{port}", secret, "packages/t1/p1/", int(time.time()) + 60)
        with urllib.request.urlopen(url + "v/seg-1.m4s", timeout=5) as r:
            assert r.read() == segment
            served.append((r.headers["X-Edge-Node"], r.headers["X-Cache-Status"]))
    assert served == [("appliance-isp-a", "MISS"), ("pop-1", "HIT"), ("appliance-isp-a", "HIT")]
    # Each tier keeps its cache in its own work dir (its own volume in compose).
    assert {p.name for p in (tmp_path / "pop").iterdir()} >= {"pop-1"}
    assert {p.name for p in (tmp_path / "appliance").iterdir()} >= {"appliance-isp-a"}
    assert not (tmp_path / "pop" / "appliance-isp-a").exists() and not (tmp_path / "appliance" / "pop-1").exists()
    # The steering server (in the PoP's process) probes the appliance in the other process (its
    # /healthz, and its stub_status, which must let the prober read it: a refusal counts as
    # down), ranks it first for a popular title on its ISP, and drops it once it is gone.
    def priority() -> list[str]:
        with urllib.request.urlopen(f"http://{OTHER_ADDRESS}:{base - 2}/steering?session=s1&title=t1&isp=isp-a",
                                    timeout=5) as r:
            return list(json.loads(r.read())["PATHWAY-PRIORITY"])

    # The PoP starts first: its first probes may find no appliance yet (probes are 2 s apart).
    deadline = time.monotonic() + 10
    while priority() != ["appliance-isp-a", "pop-1"]:
        assert time.monotonic() < deadline, "steering never found the appliance healthy"
        time.sleep(0.2)
    probed = time.monotonic() + 2 * 2.0 + 0.5  # and it stays so over two more probe rounds
    while time.monotonic() < probed:
        assert priority() == ["appliance-isp-a", "pop-1"]
        time.sleep(0.5)
    # The compose file's health checks for the three services pass against these processes.
    assert compose_check("origin", {18399: base - 1}) == 0
    assert compose_check("pop", {18398: base - 2, 18400: base}) == 0
    assert compose_check("appliance", {18401: base + 1}) == 0
    assert compose_check("appliance", {18401: free_port()}) != 0  # down: unhealthy
    appliance = started.pop()
    appliance.send_signal(signal.SIGTERM)
    appliance.wait(20)
    deadline = time.monotonic() + 10
    while priority() != ["pop-1"]:
        assert time.monotonic() < deadline, "steering kept the stopped appliance"
        time.sleep(0.2)
