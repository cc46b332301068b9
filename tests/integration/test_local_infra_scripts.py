"""infra/local's scripts when a start fails half-way, and with several services named. Run in
a run folder of their own (the server jars linked from the real one) on free ports, so the
servers the suite uses are never touched."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REAL_RUN = Path(os.environ.get("REEL_RUN_DIR") or REPO / ".run")
pytestmark = pytest.mark.skipif(not (REAL_RUN / "dist" / "kafka").is_dir(),
                                reason="the Kafka jars are not fetched (bash infra/local/fetch.sh kafka)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def run_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    run = tmp_path / "run"
    run.mkdir()
    (run / "dist").symlink_to(REAL_RUN / "dist")
    env = {**os.environ, "REEL_RUN_DIR": str(run), "REEL_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
           "REEL_KAFKA_CONTROLLER_PORT": str(free_port()), "REEL_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    yield env
    subprocess.run(["bash", str(REPO / "infra/local/stop.sh"), "all"], env=env, capture_output=True, check=False)


def alive(pid_file: Path) -> bool:
    try:
        os.kill(int(pid_file.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def test_a_start_that_fails_stops_the_servers_it_launched(run_env: dict[str, str]) -> None:
    s3_port = int(run_env["REEL_S3_ENDPOINT"].rsplit(":", 1)[1])
    with socket.socket() as taken:  # another program on the S3 port
        taken.bind(("127.0.0.1", s3_port))
        taken.listen()
        done = subprocess.run(["bash", str(REPO / "infra/local/start.sh"), "kafka", "s3"], env=run_env,
                              capture_output=True, text=True, timeout=180, check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and f"s3: port 127.0.0.1:{s3_port} is already in use" in out, out
    assert "kafka: started pid" in out and "stopping what this run started: kafka" in out, out
    kafka_pid = Path(run_env["REEL_RUN_DIR"]) / "pids" / "kafka.pid"
    deadline = time.monotonic() + 30
    while kafka_pid.exists() and alive(kafka_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (kafka_pid.exists() and alive(kafka_pid)), "Kafka was left running"


def test_several_services_are_each_checked(run_env: dict[str, str]) -> None:
    # `health.sh kafka s3` checked only the last one named, and said nothing of Kafka.
    done = subprocess.run(["bash", str(REPO / "infra/local/health.sh"), "kafka", "s3"], env=run_env,
                          capture_output=True, text=True, timeout=60, check=False)
    out = done.stdout + done.stderr
    assert done.returncode != 0 and "kafka" in out and "s3" in out, out
