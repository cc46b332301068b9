"""Embedded mode: the same transcode workers as local processes, one per core by default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from reelstream.cpus import usable_cores


def worker_command(threads: int, capabilities: str, idle_exit_s: float | None, extra: Sequence[str] = ()) -> list[str]:
    argv = [sys.executable, "-m", "reelstream.cli", "worker", "transcode", "--processes", "1",
            "--threads", str(threads), "--capabilities", capabilities, *extra]
    if idle_exit_s is not None:
        argv += ["--idle-exit", str(idle_exit_s)]
    return argv


def start_pool(processes: int, threads: int = 1, capabilities: str = "auto", idle_exit_s: float | None = None,
               env: dict[str, str] | None = None, extra: Sequence[str] = (), log_dir: Path | None = None,
               pin: bool = True) -> list[subprocess.Popen[bytes]]:
    """Start ``processes`` workers; each is a member of the same consumer group.

    ``pin``: worker ``i`` (and the ffmpeg it runs, which inherits the mask) is bound to core
    ``i % cores``. ffmpeg 8 runs the decoder, the filter graph and every encoder in threads
    of their own, so even with ``-threads 1`` one worker spreads over every core; pinned, N
    workers use N cores and no more, and the fleet's speed scales with its size.
    """
    procs = []
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinned = pin and bool(cores) and processes <= len(cores)
    for i in range(processes):
        out = open(log_dir / f"worker-{i}.log", "wb") if log_dir else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(worker_command(threads or (1 if pinned else 0), capabilities, idle_exit_s, extra),
                                env=env or dict(os.environ), stdout=out, stderr=subprocess.STDOUT)
        if pinned:
            try:
                os.sched_setaffinity(proc.pid, {cores[i % len(cores)]})  # before it spawns any ffmpeg
            except OSError:
                pass  # not allowed here (some containers): unpinned still works, only less evenly
        procs.append(proc)
    return procs


def stop_pool(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def default_processes() -> int:
    return usable_cores()
