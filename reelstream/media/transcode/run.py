"""The one place media processes are spawned: logs the exact command, captures stderr,
turns a failure into a MediaCommandFailed that names what was being done."""

from __future__ import annotations

import logging
import shlex
import subprocess
from collections.abc import Sequence

from reelstream.errors import ReelStreamError

log = logging.getLogger(__name__)


class MediaCommandFailed(ReelStreamError):
    """ffmpeg or ffprobe exited non-zero (or timed out); the message carries the end of its stderr."""


def run(argv: Sequence[str], what: str, timeout: float = 3600.0) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion; raise MediaCommandFailed with stderr's last lines on failure."""
    log.info("%s: %s", what, shlex.join(argv))
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, errors="replace", check=False)
    except subprocess.TimeoutExpired as e:
        raise MediaCommandFailed(f"{what}: timed out after {timeout:.0f}s") from e
    except OSError as e:
        raise MediaCommandFailed(f"{what}: cannot start {argv[0]}: {e}") from e
    if result.returncode != 0:
        tail = " | ".join(error_lines(result.stderr)[-5:])
        raise MediaCommandFailed(f"{what}: exit {result.returncode}: {tail or 'no error output'}")
    return result


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
    readers are killed once the writer is done and they do not finish in time."""
    procs = []
    for reader in readers:
        log.info("%s (reader): %s", what, shlex.join(reader))
        try:
            procs.append(subprocess.Popen(list(reader), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True, errors="replace"))
        except OSError as e:
            for p in procs:
                p.kill()
            raise MediaCommandFailed(f"{what}: cannot start {reader[0]}: {e}") from e
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
