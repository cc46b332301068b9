"""The embedded host: processors as asyncio tasks over EmbeddedLog + SQLite (or any adapters)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from reelstream.events.codec import EventCodec
from reelstream.processors.base import Processor
from reelstream.processors.retry import until_applied
from reelstream.processors.runner import ProcessorRunner
from reelstream.stores.ports import EventLog, Record, StateStore

log = logging.getLogger(__name__)
T = TypeVar("T")


def group_id(processor: Processor, prefix: str = "reel") -> str:
    return f"{prefix}.processor.{processor.name}"


async def run_processor(processor: Processor, event_log: EventLog, state: StateStore, codec: EventCodec,
                        producer: str, stop: asyncio.Event, group_prefix: str = "reel") -> None:
    """Consume, apply, flush outputs, then commit: at-least-once, idempotent by position.

    Each processor has a thread of its own for its blocking calls. On asyncio's shared
    default pool (min(32, cores + 4) threads: 6 on 2 cores) twelve processors each
    parked in a 0.5 s poll queued behind one another, and every poll, batch and commit
    waited for a free thread: a heartbeat took about 2 s to become readable in an idle
    system (bench/heartbeats.py)."""
    state.ensure_views(processor.views)
    runner = ProcessorRunner(processor, event_log, state, codec, producer)
    thread = ThreadPoolExecutor(1, thread_name_prefix=f"processor-{processor.name}")
    loop = asyncio.get_running_loop()

    def blocking(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        return loop.run_in_executor(thread, fn, *args)

    consumer = await blocking(event_log.consumer, list(processor.topics), group_id(processor, group_prefix))

    async def apply(records: list[Record]) -> None:
        await blocking(runner.process, records)
        await blocking(consumer.commit, records)

    try:
        while not stop.is_set():
            records = await blocking(consumer.poll, 500, 0.5)
            # A store or log that fails is waited out on the same records (processors/retry.py).
            if records and not await until_applied(partial(apply, records), f"{processor.name}: {len(records)} "
                                                   f"records from {records[0].topic}", stop):
                break
    finally:
        await blocking(consumer.close)
        thread.shutdown(wait=False)
        log.info("%s stopped: %s", processor.name, runner.stats)


async def run_embedded(processors: Sequence[Processor], event_log: EventLog, state: StateStore,
                       codec: EventCodec, producer: str, stop: asyncio.Event, group_prefix: str = "reel") -> None:
    tasks = [asyncio.create_task(run_processor(p, event_log, state, codec, producer, stop, group_prefix),
                                 name=p.name)
             for p in processors]
    await asyncio.gather(*tasks)
