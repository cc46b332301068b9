"""The server runtime: Kafka + Cassandra, processors hosted by Faust, then by the embedded host.

Same processor code as the embedded runtime; the only difference is the URLs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.events.model import Event
from reelstream.events.topics import DEAD_LETTER_TOPIC
from reelstream.processors.app import faust_app_id
from reelstream.processors.entitlements.logic import ENTITLEMENTS
from reelstream.processors.playback.logic import WATCH_POSITIONS
from reelstream.runtime import Runtime
from tests.support.events import grant, heartbeat

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server_settings(kafka_bootstrap: str, cassandra_contact: tuple[list[str], int], unique: str,
                    tmp_path: Path) -> Settings:
    hosts, port = cassandra_contact
    # Its own namespace: the Faust host reads the prefixed topics and hands the processors
    # logical names (the dead-letter and replay checks below would fail otherwise).
    return Settings(data_dir=tmp_path, log_url=f"kafka://{kafka_bootstrap}", group_prefix=f"it-{unique}",
                    namespace=f"ns-{unique}", state_url=f"cassandra://{','.join(hosts)}:{port}/reel_it_{unique}")


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


def start_processors(settings: Settings, runtime: str, log_file: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REEL_LOG_URL": settings.log_url, "REEL_STATE_URL": settings.state_url,
           "REEL_GROUP_PREFIX": settings.group_prefix, "REEL_NAMESPACE": settings.namespace,
           "REEL_DATA_DIR": str(settings.data_dir)}
    return subprocess.Popen([sys.executable, "-m", "reelstream.cli", "processors", "--runtime", runtime],
                            env=env, cwd=REPO, stdout=log_file.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize("host", ["faust", "embedded"])
def test_processors_materialize_into_cassandra_and_replay_verifies(
        host: str, server_settings: Settings, tmp_path: Path, unique: str) -> None:
    runtime = Runtime(server_settings)
    users = [f"{host}-{unique}-u{i}" for i in range(20)]
    for i, user in enumerate(users):
        runtime.publish(grant(user, f"e{i}"), flush=False)
        for beat in range(5):
            runtime.publish(heartbeat(user, "t1", "tv", 30_000 * beat, 30 * beat), flush=False)
    runtime.log.append("reel.playback", users[0].encode(), b"garbage that is not an event")
    runtime.log.flush()

    process = start_processors(server_settings, host, tmp_path / "processors.log")
    try:
        wait_for(lambda: all(
            (row := runtime.state.get(WATCH_POSITIONS, (u, "t1", "tv"))) is not None
            and row.values["position_ms"] == 120_000 for u in users), 180,
            f"the {host} processors to write every watch position")
        # Each processor has its own group and pace: the entitlements may land after the positions.
        wait_for(lambda: all(runtime.state.get(ENTITLEMENTS, (u, f"e{i}")) is not None for i, u in enumerate(users)),
                 180, f"the {host} processors to write every entitlement")
        env = {**os.environ, "REEL_LOG_URL": server_settings.log_url, "REEL_STATE_URL": server_settings.state_url,
               "REEL_GROUP_PREFIX": server_settings.group_prefix, "REEL_NAMESPACE": server_settings.namespace}
        verify = subprocess.run([sys.executable, "-m", "reelstream.cli", "replay", "watch_positions", "--verify"],
                                env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
                                check=False)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "verified: rebuilt state equals the live state" in verify.stdout
    finally:
        stop(process)
    # Faust keeps its files in the data dir, not in the folder the worker started from.
    assert not (REPO / f"{faust_app_id(server_settings.group_prefix, server_settings.namespace)}-data").exists()
    if host == "faust":
        assert (server_settings.data_dir / "faust").is_dir()
    # The garbage went to the dead-letter topic and processing went on past it.
    reader = runtime.log.consumer([DEAD_LETTER_TOPIC], group_id=None)
    letters: list[Event] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
            l["value"] == b"garbage that is not an event" and l["key"] == users[0].encode() for l in letters):
        letters += [runtime.codec.decode(r.value) for r in reader.poll(timeout=1.0)]
    reader.close()
    assert any(l["value"] == b"garbage that is not an event" and l["key"] == users[0].encode() for l in letters)
    runtime.close()
