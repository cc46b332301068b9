"""The one place media processes are spawned: logs the exact command, captures stderr,
turns a failure into a MediaCommandFailed that names what was being done.

A thread that runs media commands inside ``Supervisor.watching()`` can have them all
stopped from another thread (``Supervisor.stop``): a transcode worker asked to stop kills
its encode instead of waiting for it. Supervised commands start in a process group of
their own, so a terminal's Ctrl-C (sent to the whole foreground group) reaches the worker
only, which then stops them itself; an ffmpeg that got the SIGINT directly would exit 255
and the job would be recorded as failed, using up one of its attempts. Unsupervised
commands (``reel ingest``'s probes and trial encodes) stay in the caller's group, where a
Ctrl-C reaches them as before.

A worker that is SIGKILLed (the OOM killer, `kill -9`) runs no clean-up, so on Linux each
command is started through util-linux's ``setpriv --pdeathsig KILL``: the kernel kills it
when the thread that started it dies. That thread always outlives it here (``_child``
waits for or kills the command before it returns), so the signal never comes early.
Python's own ``preexec_fn`` could set the same flag but is unsafe in a threaded process.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from reelstream.errors import ReelStreamError

log = logging.getLogger(__name__)


class MediaCommandFailed(ReelStreamError):
    """ffmpeg or ffprobe exited non-zero (or timed out); the message carries the end of its stderr."""


class MediaStopped(ReelStreamError):
    """A media command was killed, or not started, because its ``Supervisor`` was stopped (the
    worker running it is shutting down): neither the command nor the job failed."""


class Supervisor:
    """The media processes that threads start inside ``watching()``, stoppable from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[str]] = set()
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        """Kill every process running under this supervisor and refuse new ones."""
        with self._lock:
            self._stopped = True
            running = list(self._running)
        for proc in running:
            _kill(proc)

    @contextmanager
    def watching(self) -> Iterator[Supervisor]:
        """Supervise the media commands this thread runs in the block."""
        previous = getattr(_local, "supervisor", None)
        _local.supervisor = self
        try:
            yield self
        finally:
            _local.supervisor = previous

    def _start(self, argv: Sequence[str], what: str, popen: dict[str, Any]) -> subprocess.Popen[str]:
        with self._lock:  # started under the lock: a concurrent stop() cannot miss it
            if self._stopped:
                raise MediaStopped(f"{what}: not started, stopping")
            proc: subprocess.Popen[str] = subprocess.Popen(_dies_with_its_parent(argv), start_new_session=True,
                                                           **popen)
            self._running.add(proc)
        return proc

    def _forget(self, proc: subprocess.Popen[str]) -> None:
        with self._lock:
            self._running.discard(proc)


_local = threading.local()
_SETPRIV = shutil.which("setpriv") if sys.platform == "linux" else None


def _dies_with_its_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` started so that it is killed when the thread that started it dies."""
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv] if _SETPRIV else list(argv)


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    try:
        if os.getpgid(proc.pid) == proc.pid:  # supervised, in its own group: what it started goes too
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass  # it exited meanwhile


@contextmanager
def _child(argv: Sequence[str], what: str, **popen: Any) -> Iterator[subprocess.Popen[str]]:
    """``argv`` started (supervised when this thread is); killed if still running when the
    block ends, however it ends, so no media process outlives the call that started it."""
    supervisor: Supervisor | None = getattr(_local, "supervisor", None)
    popen = {"text": True, "errors": "replace", **popen}
    if _SETPRIV and shutil.which(argv[0]) is None:  # else setpriv's exit 127 would stand for it
        raise MediaCommandFailed(f"{what}: cannot start {argv[0]}: no such executable")
    try:
        proc = supervisor._start(argv, what, popen) if supervisor else subprocess.Popen(_dies_with_its_parent(argv),
                                                                                          **popen)
    except OSError as e:
        raise MediaCommandFailed(f"{what}: cannot start {argv[0]}: {e}") from e
    try:
        with proc:
            try:
                yield proc
            finally:
                _kill(proc)
    finally:
        if supervisor:
            supervisor._forget(proc)
    if supervisor and supervisor.stopped and proc.returncode != 0:
        raise MediaStopped(f"{what}: stopped")


def run(argv: Sequence[str], what: str, timeout: float = 3600.0) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion; raise MediaCommandFailed with stderr's last lines on failure."""
    log.info("%s: %s", what, shlex.join(argv))
    with _child(argv, what, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise MediaCommandFailed(f"{what}: timed out after {timeout:.0f}s") from e
    if proc.returncode != 0:
        tail = " | ".join(error_lines(stderr)[-5:])
        raise MediaCommandFailed(f"{what}: exit {proc.returncode}: {tail or 'no error output'}")
    return subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)


def error_lines(stderr: str) -> list[str]:
    """stderr's lines, less those ffmpeg tagged as below a warning (``-loglevel level+info``)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    quiet = ("[info]", "[verbose]", "[debug]", "[trace]")
    return [line for line in lines if not any(tag in line for tag in quiet)] or lines[-5:]


def run_with_readers(argv: Sequence[str], readers: Sequence[Sequence[str]], what: str,
                     timeout: float = 3600.0) -> tuple[str, list[str]]:
    """Run ``argv`` while ``readers`` (started first) read the FIFOs it writes; every one must
    succeed. Returns the writer's stderr and each reader's. A reader that fails makes the writer fail (broken
    pipe); a writer that fails before opening a FIFO would leave its reader blocked, so the
    readers are killed once the writer is done and they do not finish in time, and at once
    when anything else ends the call (the worker stopping, an interrupt)."""
    with ExitStack() as running:
        procs = []
        for reader in readers:
            log.info("%s (reader): %s", what, shlex.join(reader))
            procs.append(running.enter_context(_child(reader, what, stdin=subprocess.DEVNULL,
                                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
        failure: MediaCommandFailed | None = None
        written = ""
        try:
            written = run(argv, what, timeout).stderr
        except MediaCommandFailed as e:
            failure = e
        errors = []
        for reader, proc in zip(readers, procs, strict=True):
            try:
                _, err = proc.communicate(timeout=60 if failure is None else 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
            errors.append(err)
            if proc.returncode != 0 and failure is None:
                tail = " | ".join(error_lines(err)[-5:])
                failure = MediaCommandFailed(f"{what}: {reader[0]} exit {proc.returncode}: {tail or 'no error output'}")
    if failure is not None:
        raise failure
    return written, errors
