"""`reel worker transcode --processes N`: a worker that dies (the OOM killer's SIGKILL) is
started again, so the fleet keeps its strength; SIGTERM to the pool stops every worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie no one has reaped yet is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_worker_that_dies_is_started_again_and_sigterm_stops_them_all(tmp_path: Path) -> None:
    env = {**os.environ, "REEL_DATA_DIR": str(tmp_path / "reel")}
    pool = subprocess.Popen([sys.executable, "-m", "reelstream.cli", "worker", "transcode", "--processes", "2",
                             "--capabilities", "cpu"], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out: list[str] = []
    readers = [threading.Thread(target=lambda s=s: out.extend(s), daemon=True) for s in (pool.stdout, pool.stderr)]
    for reader in readers:
        reader.start()
    try:
        wait_for(lambda: any("transcode workers running" in line for line in out), 30, "the pool to start")
        first, second = (int(p) for p in re.findall(r"\d+", next(x for x in out if "pids" in x).split("pids")[1])[:2])
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: any("started again" in line for line in out), 30, "the dead worker to be started again")
        restarted = int(re.search(r"started again \(pid (\d+)\)", "".join(out)).group(1))  # type: ignore[union-attr]
        assert "died (signal 9)" in "".join(out)
        assert alive(restarted) and alive(second) and restarted != first
        pool.send_signal(signal.SIGTERM)
        assert pool.wait(30) == 0
        assert not alive(restarted) and not alive(second), "SIGTERM to the pool stops its workers"
    finally:
        if pool.poll() is None:
            pool.kill()
            pool.wait()


def test_workers_that_go_idle_are_not_started_again_and_the_pool_ends(tmp_path: Path) -> None:
    env = {**os.environ, "REEL_DATA_DIR": str(tmp_path / "reel")}
    done = subprocess.run([sys.executable, "-m", "reelstream.cli", "worker", "transcode", "--processes", "2",
                           "--capabilities", "cpu", "--idle-exit", "0.5"], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "started again" not in done.stderr and "died" not in done.stderr
