"""Waiting out a store or log that fails, on the same records, in either processor host.

A processor host must not give up the records it holds when Cassandra or Kafka has a bad
moment (a node restart takes ~30 s): Faust acknowledges a message its agent raised on, and
the embedded host's task would end and take the whole `reel processors` with it. The
records are applied again until they go through; the runner de-duplicates by log position,
so applying a batch twice writes nothing twice. A record's own faults never get here: the
runner dead-letters them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from reelstream.processors.runner import INFRASTRUCTURE_FAULTS

log = logging.getLogger(__name__)

# A broker restart takes ~10 s, a Cassandra node ~30 s: a try every few seconds resumes soon
# after and adds no load.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0


async def until_applied(attempt: Callable[[], Awaitable[None]], what: str,
                        stop: asyncio.Event | None = None) -> bool:
    """Await ``attempt()`` again while it raises a store or log fault (``INFRASTRUCTURE_FAULTS``),
    with a pause that doubles up to ``RETRY_MAX_S``; True once it went through, False when
    ``stop`` was set first (the records stay uncommitted, for the next run)."""
    delay, failures = RETRY_FIRST_S, 0
    while True:
        try:
            await attempt()
        except INFRASTRUCTURE_FAULTS as e:
            failures += 1
            log.warning("%s not applied, retrying in %.1fs (try %d): %s", what, delay, failures, e)
            if stop is None:
                await asyncio.sleep(delay)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    return False
                except TimeoutError:
                    pass
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        if failures:
            log.warning("%s applied after %d failed tries", what, failures)
        return True
