"""Embedded mode: the same transcode workers as local processes, one per core by default."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from reelstream.cpus import usable_cores

log = logging.getLogger(__name__)
RESTART_FIRST_S = 1.0
RESTART_MAX_S = 60.0
RESTART_RESET_S = 60.0  # a worker that ran this long before dying starts again after RESTART_FIRST_S


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
    start = worker_starter(processes, threads, capabilities, idle_exit_s, env, extra, log_dir, pin)
    return [start(i) for i in range(processes)]


def worker_starter(processes: int, threads: int = 1, capabilities: str = "auto", idle_exit_s: float | None = None,
                   env: dict[str, str] | None = None, extra: Sequence[str] = (), log_dir: Path | None = None,
                   pin: bool = True) -> Callable[[int], subprocess.Popen[bytes]]:
    """What starts worker ``i`` of a pool of ``processes`` (see ``start_pool``), again after a death too."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    pinned = pin and bool(cores) and processes <= len(cores)

    def start(i: int) -> subprocess.Popen[bytes]:
        argv = worker_command(threads or (1 if pinned else 0), capabilities, idle_exit_s, extra)
        if log_dir:
            with open(log_dir / f"worker-{i}.log", "ab") as out:  # the child keeps its own copy of the handle
                proc = subprocess.Popen(argv, env=env or dict(os.environ), stdout=out, stderr=subprocess.STDOUT)
        else:
            proc = subprocess.Popen(argv, env=env or dict(os.environ), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.STDOUT)
        if pinned:
            try:
                os.sched_setaffinity(proc.pid, {cores[i % len(cores)]})  # before it spawns any ffmpeg
            except OSError:
                pass  # not allowed here (some containers): unpinned still works, only less evenly
        return proc

    return start


def supervise(procs: list[subprocess.Popen[bytes]], start: Callable[[int], subprocess.Popen[bytes]],
              should_stop: Callable[[], bool], poll_s: float = 0.5,
              clock: Callable[[], float] = time.monotonic) -> None:
    """Keep the pool at strength until ``should_stop()`` or every worker has ended by itself.

    A worker that exits 0 was stopped or went idle (``--idle-exit``) and stays down. One that
    dies (a non-zero exit, a signal: the OOM killer's SIGKILL) is started again in its slot,
    or the fleet would shrink with no one the wiser; its job is redelivered to the group
    meanwhile. The pause before a restart doubles, up to ``RESTART_MAX_S``, while a slot keeps
    dying within ``RESTART_RESET_S`` of its start (a worker that cannot start at all)."""
    pauses = [0.0] * len(procs)
    started = [clock()] * len(procs)
    due: dict[int, float] = {}  # slot -> when to start it again
    while not should_stop():
        for i, proc in enumerate(procs):
            code = proc.poll()
            if code is None or code == 0 or i in due:
                continue
            quick = clock() - started[i] < RESTART_RESET_S
            pauses[i] = min(RESTART_MAX_S, max(RESTART_FIRST_S, pauses[i] * 2)) if quick else RESTART_FIRST_S
            due[i] = clock() + pauses[i]
            log.warning("transcode worker %d (pid %d) died (%s); starting it again in %.1fs", i, proc.pid,
                        f"signal {-code}" if code < 0 else f"exit {code}", pauses[i])
        for i, when in list(due.items()):
            if clock() >= when:
                del due[i]
                procs[i], started[i] = start(i), clock()
                log.warning("transcode worker %d started again (pid %d)", i, procs[i].pid)
        if not due and all(p.poll() == 0 for p in procs):
            return
        time.sleep(poll_s)


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
