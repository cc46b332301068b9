"""infra/local/start.sh when a port is not free for the server it would wait for: it must
fail at once, naming what holds the port and what to do, not wait out the server's
start-up timeout. Real listeners (python processes) on free ports, a run folder of their
own; no server is fetched or started, so these run anywhere in about a second."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Binds the port given, says so, then waits to be killed.
LISTEN = ("import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen();"
          " print('listening', flush=True); time.sleep(120)")
# The start-up timeout the old script waited out; a fast failure takes a fraction of it.
TIMEOUT_S = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listeners() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def listen(listeners: list[subprocess.Popen[str]], port: int, *extra: str) -> int:
    """A python process listening on ``port`` (``extra`` goes on its command line); its pid."""
    process = subprocess.Popen([sys.executable, "-c", LISTEN, str(port), *extra], stdout=subprocess.PIPE, text=True)
    listeners.append(process)
    assert process.stdout is not None and process.stdout.readline().strip() == "listening"
    return process.pid


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "pids").mkdir()
    return {**os.environ, "REEL_RUN_DIR": str(tmp_path), "REEL_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}",
            "REEL_S3_START_TIMEOUT": str(TIMEOUT_S)}


def start_s3(env: dict[str, str]) -> tuple[int, str, float]:
    t0 = time.monotonic()
    done = subprocess.run(["bash", str(REPO / "infra/local/start.sh"), "s3"], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S + 30, check=False)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - t0


def pretend_started(env: dict[str, str], pid: int, ports: str | None) -> None:
    """What a start by the script leaves for ``pid``: its pid file (and the ports it was given)."""
    pids = Path(env["REEL_RUN_DIR"]) / "pids"
    (pids / "s3.pid").write_text(f"{pid}\n")
    if ports is not None:
        (pids / "s3.ports").write_text(f"127.0.0.1 {ports}\n")


def port_of(env: dict[str, str]) -> int:
    return int(env["REEL_S3_ENDPOINT"].rsplit(":", 1)[1])


def test_a_port_held_by_another_program_names_it(run_env: dict[str, str],
                                                 listeners: list[subprocess.Popen[str]]) -> None:
    holder = listen(listeners, port_of(run_env))
    rc, out, took = start_s3(run_env)
    assert rc != 0 and f"port 127.0.0.1:{port_of(run_env)} is already in use by pid {holder}" in out, out
    assert "REEL_S3_ENDPOINT=" in out and took < TIMEOUT_S / 2, (took, out)


@pytest.mark.parametrize("recorded", [True, False], ids=["ports-recorded", "started-before-ports-were-recorded"])
def test_our_server_running_on_other_ports_fails_fast(run_env: dict[str, str], listeners: list[subprocess.Popen[str]],
                                                      recorded: bool) -> None:
    # An earlier start ran S3 on another port; REEL_S3_ENDPOINT now names a free one, where
    # that server will never answer: the old script waited its whole start-up timeout.
    other = free_port()
    ours = listen(listeners, other, "-Dreelstream.service=s3")
    pretend_started(run_env, ours, str(other) if recorded else None)
    rc, out, took = start_s3(run_env)
    assert rc != 0 and f"the server this script started earlier runs (pid {ours}" in out, out
    assert f"on 127.0.0.1 port(s) {other}, not on 127.0.0.1 port(s) {port_of(run_env)}" in out, out
    assert "infra/local/stop.sh s3" in out and took < TIMEOUT_S / 2, (took, out)
    assert listeners[0].poll() is None, "the running server was stopped"


def test_our_server_running_while_another_program_holds_its_port(
        run_env: dict[str, str], listeners: list[subprocess.Popen[str]]) -> None:
    ours = listen(listeners, free_port(), "-Dreelstream.service=s3")
    pretend_started(run_env, ours, str(port_of(run_env)))
    holder = listen(listeners, port_of(run_env))
    rc, out, took = start_s3(run_env)
    assert rc != 0 and f"port 127.0.0.1:{port_of(run_env)} is held by pid {holder}" in out, out
    assert f"not by the s3 server this script started (pid {ours})" in out and took < TIMEOUT_S / 2, (took, out)
