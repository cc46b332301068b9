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
        tail = " | ".join(result.stderr.strip().splitlines()[-5:])
        raise MediaCommandFailed(f"{what}: exit {result.returncode}: {tail or 'no error output'}")
    return result
