"""The Faust host: the same processors as Faust agents on Kafka topics, state in Cassandra.

Each agent reads its processor's topics as raw bytes and hands every message to the
shared ``ProcessorRunner`` (decode, de-duplicate by position, write the view rows,
emit). An agent acknowledges a message once it is applied and Faust commits acknowledged
offsets, so processing is at-least-once and the runner makes it idempotent. The ack is by
hand: Faust's automatic one also fires when the agent raised on the message (the stream's
``finally``) or was cancelled, and its supervisor restarts the agent on the next one; a
store or log that fails is waited out on the same message (``_process_until_applied``). No Faust
tables: the views live in the StateStore so gateways can read them and `reel replay` can
rebuild them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import faust

from reelstream.config import Settings
from reelstream.errors import ConfigError
from reelstream.processors.base import Processor
from reelstream.processors.retry import until_applied
from reelstream.processors.runner import ProcessorRunner
from reelstream.runtime import Runtime
from reelstream.stores.ports import Record

log = logging.getLogger(__name__)


def faust_app_id(prefix: str = "reel", namespace: str = "") -> str:
    return f"{namespace}.{prefix}.processors" if namespace else f"{prefix}.processors"


def _record(message: Any, namespace: str) -> Record:
    topic = message.topic.removeprefix(f"{namespace}.") if namespace else message.topic
    return Record(topic, message.partition, message.offset, message.key, message.value,
                  int((message.timestamp or 0) * 1000), tuple(message.headers or ()))


def _agent(runner: ProcessorRunner, namespace: str) -> Callable[[Any], Any]:
    async def agent(stream: Any) -> AsyncIterator[None]:
        # Acknowledged by hand, once applied: an automatic ack also happens when the agent is
        # cancelled (a shutdown while a message waits a store out), committing what was not applied.
        manual = stream.noack()
        async for event in manual.events():
            await _process_until_applied(runner, _record(event.message, namespace))
            await manual.ack(event)
            yield None

    return agent


async def _process_until_applied(runner: ProcessorRunner, record: Record) -> None:
    """``runner.process([record])``, tried again while a store or log fails: raised, it would
    crash the agent, whose message Faust acknowledges and commits anyway (measured: across a
    Cassandra restart, 6 of 1,000 heartbeats never reached their view)."""
    await until_applied(lambda: asyncio.to_thread(runner.process, [record]),
                        f"{runner.processor.name}: {record.topic}/{record.partition}@{record.offset}")


def build_app(settings: Settings, processors: Sequence[Processor], runtime: Runtime | None = None) -> faust.App:
    if not settings.log_url.startswith("kafka://"):
        raise ConfigError(f"the Faust runtime needs a Kafka log (--kafka or REEL_LOG_URL=kafka://...), "
                          f"not {settings.log_url}")
    runtime = runtime or Runtime(settings)
    brokers = [f"kafka://{h}" for h in settings.log_url.removeprefix("kafka://").split(",")]
    app = faust.App(
        faust_app_id(settings.group_prefix, settings.namespace), broker=brokers, value_serializer="raw", key_serializer="raw",
        # Faust's own files (table changelogs' local state) belong with the rest of the data
        # dir; its default is "<app id>-data" in whatever folder the worker was started from.
        datadir=str(settings.data_dir / "faust"),
        store="memory://", web_enabled=False, topic_allow_declare=False,
        consumer_auto_offset_reset="earliest", producer_acks=-1,
        broker_commit_every=100, broker_commit_interval=1.0,
    )
    _ = runtime.log  # creates the catalog's topics before the agents subscribe
    for processor in processors:
        runtime.state.ensure_views(processor.views)
        runner = ProcessorRunner(processor, runtime.log, runtime.state, runtime.codec, settings.producer)
        # Faust reads Kafka itself, so it gets the physical names (see stores/namespaced.py).
        names = [f"{settings.namespace}.{t}" if settings.namespace else t for t in processor.topics]
        topic = app.topic(*names, key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw")
        app.agent(topic, name=f"reel.processor.{processor.name}")(_agent(runner, settings.namespace))
    return app


def run_faust(settings: Settings, processors: Sequence[Processor]) -> int:
    """Run a Faust worker in the foreground (Ctrl-C stops it)."""
    app = build_app(settings, processors)
    worker = faust.Worker(app, loglevel="WARNING")
    worker.execute_from_commandline()
    return 0
