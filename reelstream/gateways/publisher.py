"""Events from request handlers, with group commit: each request waits until its events
are durable (acks=all on Kafka, committed in SQLite), and one flush serves every request
that arrived meanwhile, so durability costs one round trip per batch, not per request."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from reelstream.events.codec import EventCodec
from reelstream.events.model import Event
from reelstream.events.topics import topic_for
from reelstream.stores.ports import EventLog


class Publisher:
    def __init__(self, log: EventLog, codec: EventCodec) -> None:
        self._log = log
        self._codec = codec
        self._waiting: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="publisher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await asyncio.to_thread(self._log.flush)

    async def publish(self, events: Sequence[Event]) -> None:
        """Validate and encode every event first (SchemaViolation: nothing is written), then
        append them in order and wait for the batch's flush."""
        encoded = []
        for event in events:
            topic = topic_for(event.type)
            encoded.append((topic.name, topic.key_of(event), self._codec.encode(event, topic.name)))
        for name, key, value in encoded:
            self._log.append(name, key, value)
        if self._task is None:  # not started (scripts, tests without the app): flush inline
            await asyncio.to_thread(self._log.flush)
            return
        done = asyncio.get_running_loop().create_future()
        self._waiting.append(done)
        self._wake.set()
        await done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._waiting = self._waiting, []
            try:
                await asyncio.to_thread(self._log.flush)
            except Exception as e:  # noqa: BLE001 - every waiter gets the failure
                for fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            for fut in batch:
                if not fut.done():
                    fut.set_result(None)
