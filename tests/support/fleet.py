"""A transcode worker fleet on the real servers, run until a title is transcoded.

The integration tests start two worker processes on the servers' settings and the
completion processor in this process, and wait for the title's ``TRANSCODED`` status.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from reelstream.config import Settings
from reelstream.processors.embedded import run_embedded
from reelstream.processors.transcode.completion import (
    TRANSCODE_TITLES,
    TranscodeCompletionProcessor,
)
from reelstream.runtime import Runtime
from reelstream.workers.pool import start_pool, stop_pool


def env_of(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process use ``settings``."""
    return {**os.environ, "REEL_DATA_DIR": str(settings.data_dir), "REEL_LOG_URL": settings.log_url,
            "REEL_STATE_URL": settings.state_url, "REEL_OBJECTS_URL": settings.objects_url,
            "REEL_GROUP_PREFIX": settings.group_prefix, "REEL_NAMESPACE": settings.namespace,
            "REEL_S3_ACCESS_KEY": settings.s3_access_key or "",
            "REEL_S3_SECRET_KEY": settings.s3_secret_key or ""}


def transcode_with_fleet(runtime: Runtime, settings: Settings, title: str, log_dir: Path, timeout_s: float,
                         workers: int = 2) -> None:
    """Run ``workers`` transcode worker processes until ``title`` is transcoded (or fail)."""
    pool = start_pool(workers, threads=1, capabilities="cpu", env=env_of(settings), log_dir=log_dir)

    async def complete() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_embedded([TranscodeCompletionProcessor()], runtime.log, runtime.state,
                                                runtime.codec, "it", stop, settings.group_prefix))
        deadline = time.monotonic() + timeout_s
        while (row := runtime.state.get(TRANSCODE_TITLES, (title,))) is None or row.values["status"] != "TRANSCODED":
            assert time.monotonic() < deadline, f"{title} not transcoded within {timeout_s:.0f} s"
            await asyncio.sleep(0.5)
        stop.set()
        await task

    try:
        asyncio.run(complete())
    finally:
        stop_pool(pool)
