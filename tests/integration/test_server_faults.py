"""Real faults under the Faust-hosted processors: the Kafka broker and the Cassandra node restart.

What a deployment on the servers promises (README, "Operating notes"): the processors host
rides a broker or node restart out and carries on by itself (nothing restarts it: `reel up`
stops every role when one dies), no event is lost, every view ends exactly as a fold of the
log would make it (`reel replay --verify`), and a producer's ``flush`` waits for the broker or
raises, never drops what it was given. The faults are real: the servers of infra/local/ are
stopped and started again (``infra/local/stop.sh`` / ``start.sh``), so these tests run only
against servers that infra/local/start.sh started here, never against external ones.

Every heartbeat is for a title of its own, so each is a row of its own in ``watch_positions``
and ``profile_progress``: a lost event is a missing row, not a position that a later beat
would have overwritten anyway. Each also reopens its player's session (they are far apart
in event time), so the ``sessions`` processor emits an event per input: its output flush
meets the broker's restart too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.errors import EventLogError, StateStoreError
from reelstream.events.model import Event
from reelstream.processors.playback.logic import WATCH_POSITIONS
from reelstream.runtime import Runtime
from tests.integration.test_server_runtime import server_settings, start_processors, stop, wait_for
from tests.support.events import heartbeat

__all__ = ["server_settings"]  # a fixture, imported for the tests below

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get("REEL_RUN_DIR") or REPO / ".run")
USERS = 20
BATCH = 10  # heartbeats per flush
BATCH_EVERY_S = 0.25
# From the server healthy again to every acknowledged heartbeat in its view: the processors'
# next try (every 5 s at most), the driver's reconnection (2 s at most) and the backlog
# (measured 0.0-0.1 s after the broker, 12.6 s after the node).
RECOVERY_S = 30.0


def _require_managed(service: str) -> None:
    """Skip (fail with REEL_REQUIRE_SERVERS=1) unless infra/local/ runs ``service`` here: restarting
    is done with its scripts, and a server someone else runs must never be stopped."""
    health = subprocess.run(["bash", "infra/local/health.sh", service], cwd=REPO, capture_output=True,
                            text=True, check=False)
    if (RUN_DIR / "pids" / f"{service}.pid").is_file() and "(pid " in health.stdout + health.stderr:
        return
    message = f"{service} is not a server that infra/local/start.sh runs from {RUN_DIR}; cannot restart it"
    if os.environ.get("REEL_REQUIRE_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Restart:
    """``service`` stopped, kept down ``down_s``, started again (start.sh returns once healthy)."""

    service: str
    down_s: float
    timeline: list[tuple[float, str]] = field(default_factory=list)
    output: str = ""
    thread: threading.Thread | None = None

    def begin(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"restart-{self.service}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        started = time.monotonic()

        def script(name: str) -> None:
            done = subprocess.run(["bash", f"infra/local/{name}.sh", self.service], cwd=REPO,
                                  capture_output=True, text=True, timeout=240, check=False)
            self.output += done.stdout + done.stderr
            self.timeline.append((time.monotonic() - started, f"{name}.sh exited {done.returncode}"))

        script("stop")
        time.sleep(self.down_s)
        script("start")

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(timeout=300)
        assert [what for _, what in self.timeline] == ["stop.sh exited 0", "start.sh exited 0"], self.output


@dataclass
class Producer:
    """Appends heartbeats in flushed batches; a batch whose flush raised is appended again."""

    runtime: Runtime
    user_prefix: str
    sent: list[Event] = field(default_factory=list)  # every event some flush acknowledged
    flush_errors: list[str] = field(default_factory=list)
    slowest_flush_s: float = 0.0

    def batch(self) -> None:
        start = len(self.sent)
        events = [heartbeat(f"{self.user_prefix}-u{i % USERS}", f"t{i}", "tv", 1_000 * i, 60.0 * i)
                  for i in range(start, start + BATCH)]
        while True:
            for event in events:
                self.runtime.publish(event, flush=False)
            began = time.monotonic()
            try:
                self.runtime.log.flush()
            except EventLogError as e:  # said out loud, and the batch is sent again: never dropped
                self.flush_errors.append(str(e))
                continue
            finally:
                self.slowest_flush_s = max(self.slowest_flush_s, time.monotonic() - began)
            self.sent += events
            return

    def run_while(self, busy: threading.Thread | None, then_s: float) -> None:
        """Produce until ``busy`` has ended, then ``then_s`` more."""
        deadline: float | None = None
        while deadline is None or time.monotonic() < deadline:
            if deadline is None and (busy is None or not busy.is_alive()):
                deadline = time.monotonic() + then_s
            self.batch()
            time.sleep(BATCH_EVERY_S)


def missing_rows(runtime: Runtime, events: list[Event]) -> list[str]:
    """The heartbeats whose row is absent or holds another position (all of them while the
    store cannot be read: a restarted node is back for this client when its driver reconnects)."""
    try:
        return _missing_rows(runtime, events)
    except StateStoreError:
        return [f"{e['user_id']}/{e['title_id']}" for e in events]


def _missing_rows(runtime: Runtime, events: list[Event]) -> list[str]:
    users = sorted({event["user_id"] for event in events})
    rows = {(user, row.values["title_id"]): row.values["position_ms"]
            for user, partition in zip(users, runtime.state.query_many(WATCH_POSITIONS, [(u,) for u in users]),
                                       strict=True)
            for row in partition}
    return [f"{e['user_id']}/{e['title_id']}" for e in events
            if rows.get((e["user_id"], e["title_id"])) != e["position_ms"]]


def every_row_arrives(runtime: Runtime, producer: Producer, timeout: float, context: str) -> None:
    """Wait until every heartbeat a flush acknowledged is in its view; else fail naming the lost."""
    try:
        wait_for(lambda: not missing_rows(runtime, producer.sent), timeout, "every heartbeat to reach its row")
    except AssertionError as e:
        lost = missing_rows(runtime, producer.sent)
        raise AssertionError(f"{e}: {len(lost)} of {len(producer.sent)} missing, first {lost[:5]}; {context}") from None


def replay_verifies(settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REEL_LOG_URL": settings.log_url, "REEL_STATE_URL": settings.state_url,
           "REEL_GROUP_PREFIX": settings.group_prefix, "REEL_NAMESPACE": settings.namespace}
    return subprocess.run([sys.executable, "-m", "reelstream.cli", "replay", "watch_positions", "--verify"],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=180, check=False)


def run_fault(service: str, down_s: float, settings: Settings, unique: str, log_file: Path,
              ) -> tuple[Producer, Restart, str]:
    """Faust processors running, a producer appending, ``service`` restarted under both;
    returns once every acknowledged heartbeat is in its view and the replay verifies."""
    _require_managed(service)
    runtime = Runtime(settings)
    producer = Producer(runtime, f"{service}-{unique}")
    process = start_processors(settings, "faust", log_file)
    restart = Restart(service, down_s)
    try:
        producer.batch()
        wait_for(lambda: not missing_rows(runtime, producer.sent), 120, "the Faust processors to start applying")
        producer.run_while(None, then_s=3.0)  # a steady stream before the fault
        restart.begin()
        producer.run_while(restart.thread, then_s=5.0)  # ... through it, and after
        restart.join()
        back = time.monotonic()
        assert process.poll() is None, f"the processors host exited:\n{log_file.read_text()[-4000:]}"
        every_row_arrives(runtime, producer, 60, f"restart {restart.timeline}\n{log_file.read_text()[-4000:]}")
        caught_up_s = time.monotonic() - back
        restart.timeline.append((caught_up_s, "every row in its view, after the server was back"))
        # Soon, not whenever some client's back-off (Cassandra's driver: up to 600 s by default)
        # happens to try again.
        assert caught_up_s < RECOVERY_S, restart.timeline
        verify = replay_verifies(settings)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert "verified: rebuilt state equals the live state" in verify.stdout
        assert process.poll() is None, f"the processors host exited:\n{log_file.read_text()[-4000:]}"
    finally:
        stop(process)
        runtime.close()
    return producer, restart, log_file.read_text(errors="replace")


@pytest.mark.timeout(300)
def test_faust_processors_ride_out_a_kafka_broker_restart(
        server_settings: Settings, unique: str, tmp_path: Path) -> None:
    producer, restart, logs = run_fault("kafka", 10.0, server_settings, unique, tmp_path / "processors.log")
    # The producer kept going through the outage: its flushes waited for the broker (or raised
    # and were sent again), and some batches were appended while it was down.
    assert producer.slowest_flush_s > 5.0, (producer.slowest_flush_s, restart.timeline)
    print(f"kafka restart {restart.timeline}; {len(producer.sent)} heartbeats, slowest flush "
          f"{producer.slowest_flush_s:.1f}s, flush errors {producer.flush_errors[:3]}\n{logs[-3000:]}")


@pytest.mark.timeout(300)
def test_faust_processors_ride_out_a_cassandra_restart(
        server_settings: Settings, unique: str, tmp_path: Path) -> None:
    producer, restart, logs = run_fault("cassandra", 1.0, server_settings, unique, tmp_path / "processors.log")
    # The processors met the outage (writes failed) and said so; they retried rather than
    # moving past records they had not applied.
    assert "Cassandra" in logs and "retrying" in logs, logs[-4000:]
    print(f"cassandra restart {restart.timeline}; {len(producer.sent)} heartbeats\n{logs[-3000:]}")


@pytest.mark.timeout(300)
def test_faust_processors_stopped_during_a_cassandra_outage_lose_nothing(
        server_settings: Settings, unique: str, tmp_path: Path) -> None:
    # A deploy while the node is down: the processors are stopped while they wait the store
    # out on a message. Faust acknowledges (and commits) the message an agent is on when it is
    # cancelled, unless the agent acknowledges by hand: then that message would never come again.
    _require_managed("cassandra")
    runtime = Runtime(server_settings)
    producer = Producer(runtime, f"deploy-{unique}")
    log_file = tmp_path / "processors.log"
    process = start_processors(server_settings, "faust", log_file)
    try:
        producer.batch()
        wait_for(lambda: not missing_rows(runtime, producer.sent), 120, "the Faust processors to start applying")
        down = subprocess.run(["bash", "infra/local/stop.sh", "cassandra"], cwd=REPO, capture_output=True,
                              text=True, timeout=240, check=False)
        assert down.returncode == 0, down.stdout + down.stderr
        for _ in range(3):
            producer.batch()  # Kafka takes them; the processors cannot apply them
        wait_for(lambda: "retrying" in log_file.read_text(errors="replace"), 60, "the processors to meet the outage")
        stop(process)
        up = subprocess.run(["bash", "infra/local/start.sh", "cassandra"], cwd=REPO, capture_output=True,
                            text=True, timeout=240, check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        process = start_processors(server_settings, "faust", tmp_path / "processors-2.log")
        every_row_arrives(runtime, producer, 120, log_file.read_text(errors="replace")[-3000:])
        verify = replay_verifies(server_settings)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    finally:
        stop(process)
        subprocess.run(["bash", "infra/local/start.sh", "cassandra"], cwd=REPO, capture_output=True, timeout=240,
                       check=False)  # whatever happened above, the node is left running
        runtime.close()
