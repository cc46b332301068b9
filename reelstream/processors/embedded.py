"""The embedded host: processors as asyncio tasks over EmbeddedLog + SQLite (or any adapters)."""

from __future__ import annotations

import asyncio
import logging
from typing import Sequence

from reelstream.events.codec import EventCodec
from reelstream.processors.base import Processor
from reelstream.processors.runner import ProcessorRunner
from reelstream.stores.ports import EventLog, StateStore

log = logging.getLogger(__name__)


def group_id(processor: Processor, prefix: str = "reel") -> str:
    return f"{prefix}.processor.{processor.name}"


async def run_processor(processor: Processor, event_log: EventLog, state: StateStore, codec: EventCodec,
                        producer: str, stop: asyncio.Event, group_prefix: str = "reel") -> None:
    """Consume, apply, flush outputs, then commit: at-least-once, idempotent by position."""
    state.ensure_views(processor.views)
    runner = ProcessorRunner(processor, event_log, state, codec, producer)
    consumer = await asyncio.to_thread(event_log.consumer, list(processor.topics),
                                     group_id(processor, group_prefix))
    try:
        while not stop.is_set():
            records = await asyncio.to_thread(consumer.poll, 500, 0.5)
            if records:
                await asyncio.to_thread(runner.process, records)
                await asyncio.to_thread(consumer.commit, records)
    finally:
        await asyncio.to_thread(consumer.close)
        log.info("%s stopped: %s", processor.name, runner.stats)


async def run_embedded(processors: Sequence[Processor], event_log: EventLog, state: StateStore,
                       codec: EventCodec, producer: str, stop: asyncio.Event, group_prefix: str = "reel") -> None:
    tasks = [asyncio.create_task(run_processor(p, event_log, state, codec, producer, stop, group_prefix),
                                 name=p.name)
             for p in processors]
    await asyncio.gather(*tasks)
