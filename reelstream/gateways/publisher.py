"""Events from request handlers, two ways:

- ``publish``: the request waits until its events are durable (acks=all on Kafka,
  committed in SQLite). Group commit: one flush serves every request that arrived
  meanwhile, so durability costs one round trip per batch, not per request. For events
  a later request must see (downloads, heartbeats: the 30 s loss bound).
- ``emit``: the events are validated, encoded and handed to the producer before the call
  returns (a bad event still fails the request, nothing written), and made durable by
  the background flusher without the request waiting. For the license server's
  grant/deny audit events: the license itself is the answer, and waiting for Kafka's
  acks put a broker round trip into every license's latency. A failed delivery is
  logged and counted (``failed``, shown by ``/health``); ``stop`` flushes what is pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Sequence

from reelstream.events.codec import EventCodec
from reelstream.events.model import Event
from reelstream.events.topics import topic_for
from reelstream.stores.ports import EventLog

log = logging.getLogger(__name__)
ORIGIN_HEADER = "reel-origin"
EMIT_LINGER_S = 0.05


class Publisher:
    def __init__(self, log_: EventLog, codec: EventCodec, instance: str = "") -> None:
        self._log = log_
        # Emitted events carry ORIGIN_HEADER = instance, so this instance's log followers can
        # skip what it folded into its caches as it emitted (``views.follow``).
        self.instance = instance or uuid.uuid4().hex
        self._headers = ((ORIGIN_HEADER, self.instance.encode()),)
        self._codec = codec
        self._waiting: list[asyncio.Future[None]] = []
        self._unflushed = 0  # events appended since the flusher last took a batch
        self._wake = asyncio.Event()  # something to flush
        self._urgent = asyncio.Event()  # a request waits for the flush
        self._task: asyncio.Task[None] | None = None
        self._appending_thread: int | None = None  # handed its delivery failures to our flushes
        self.delivered = 0  # events whose flush succeeded
        self.failed = 0  # events in a batch whose flush failed (logged)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="publisher")

    async def stop(self) -> None:
        """Stop the flusher, then flush whatever is still pending (emitted, not yet durable)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        batch, self._unflushed = self._unflushed, 0
        await self._flush(batch, [])

    def _append(self, events: Sequence[Event], headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Validate and encode every event first (SchemaViolation: nothing is written), then append."""
        encoded = []
        for event in events:
            topic = topic_for(event.type)
            encoded.append((topic.name, topic.key_of(event), self._codec.encode(event, topic.name)))
        if self._appending_thread != (me := threading.get_ident()):
            # We append on the event loop and flush in worker threads.
            self._log.hand_off_failures()
            self._appending_thread = me
        for name, key, value in encoded:
            if headers:
                self._log.append(name, key, value, headers=headers)
            else:
                self._log.append(name, key, value)
        self._unflushed += len(encoded)

    async def publish(self, events: Sequence[Event]) -> None:
        """Append ``events`` in order and wait until they are durable."""
        self._append(events)
        if self._task is None:  # not started (scripts, tests without the app): flush inline
            batch, self._unflushed = self._unflushed, 0
            await asyncio.to_thread(self._log.flush)
            self.delivered += batch
            return
        await self._wait_flush()

    def emit(self, events: Sequence[Event]) -> None:
        """Append ``events`` in order; the background flusher makes them durable."""
        self._append(events, self._headers)
        if self._task is None:
            batch, self._unflushed = self._unflushed, 0
            self._log.flush()
            self.delivered += batch
            return
        self._wake.set()

    async def settled(self) -> None:
        """Wait until every event emitted before this call has been flushed (or failed)."""
        if self._task is None:
            return
        with contextlib.suppress(Exception):  # a failed flush is counted and logged by the flusher
            await self._wait_flush()

    async def _wait_flush(self) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append(done)
        self._wake.set()
        self._urgent.set()
        await done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._waiting:
                # Only emitted events: nobody waits, so let more gather (the producer sends them
                # meanwhile anyway); this flush is there to learn of failures, at most every
                # EMIT_LINGER_S, rather than a thread hop and a broker round trip per request.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), EMIT_LINGER_S)
            self._wake.clear()
            self._urgent.clear()
            batch, self._unflushed = self._unflushed, 0
            waiters, self._waiting = self._waiting, []
            await self._flush(batch, waiters)

    async def _flush(self, batch: int, waiters: list[asyncio.Future[None]]) -> None:
        try:
            await asyncio.to_thread(self._log.flush)
        except Exception as e:  # noqa: BLE001 - counted, logged, and every waiter gets it
            self.failed += batch
            log.error("%d gateway events may not have been delivered: %s", batch, e)
            for fut in waiters:
                if not fut.done():
                    fut.set_exception(e)
            return
        self.delivered += batch
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
