"""`reel worker package`: packages titles as they finish transcoding.

Workers form a consumer group on ``reel.catalog`` and act on ``TitleTranscoded``: for
each configured scheme (``plan``) they fetch the title's keys for that scheme from the
key provider (``reelstream.keys.config``), run ``package_title`` (which publishes each
package atomically: ``package.json`` last), then append TitlePackaged and TitlePublished
(``packaged_events``: key ids are in package.json only, the events name packages). The
offset is committed only after those events are durable, so a worker killed mid-title
loses nothing: the title is packaged again by whichever member gets the partition.

Idempotence: package ids derive from the TitleTranscoded event, so a redelivered event
names the same packages; one whose ``package.json`` exists is read back instead of
packaged again (the packager refuses to overwrite a published package), and the events
are re-emitted with the same ids.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from reelstream.errors import ObjectNotFound, ReelStreamError, SchemaRegistryUnavailable
from reelstream.events.model import Event
from reelstream.media.encrypt.keys import KeyProvider
from reelstream.media.package.model import Package, Scheme
from reelstream.media.package.packager import package_title
from reelstream.processors.packaging.logic import (
    DEFAULT_SCHEMES,
    PackageRequest,
    packaged_events,
    plan,
)
from reelstream.runtime import Runtime
from reelstream.stores.ports import Record

log = logging.getLogger(__name__)

REGISTRY_RETRY_S = 2.0  # a registry restart takes seconds: retry soon, without load

CATALOG_TOPIC = "reel.catalog"


def worker_group(prefix: str) -> str:
    return f"{prefix}.workers.package"


@dataclass
class PackageWorkerStats:
    packaged: int = 0  # packages made
    reused: int = 0  # packages found already published (redelivered events)
    failed: int = 0  # titles whose packaging raised (logged; nothing half-written is published)


@dataclass
class PackageWorker:
    runtime: Runtime
    key_provider: Callable[[], KeyProvider]  # built lazily: the key service needs REEL_KEK
    schemes: Sequence[Scheme] = DEFAULT_SCHEMES
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    threads: int = 2
    fault: Callable[[PackageRequest], None] | None = None  # tests: called before each package, to inject failures
    stats: PackageWorkerStats = field(default_factory=PackageWorkerStats)

    @property
    def producer(self) -> str:
        return f"worker.package@{self.worker_id}"

    def run(self, should_stop: Callable[[], bool], idle_exit_s: float | None = None) -> PackageWorkerStats:
        """Handle catalog events until ``should_stop()`` (or ``idle_exit_s`` without one)."""
        consumer = self.runtime.log.consumer([CATALOG_TOPIC], worker_group(self.runtime.settings.group_prefix))
        idle_since = time.monotonic()
        try:
            while not should_stop():
                records = consumer.poll(max_records=10, timeout=0.5)
                if not records:
                    if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                        break
                    continue
                try:
                    for record in records:
                        self.process(record)
                except SchemaRegistryUnavailable as e:
                    # Not the records' fault: uncommitted, they come again to a new consumer.
                    log.warning("schema registry unavailable, the records will come again in %.1fs: %s",
                                REGISTRY_RETRY_S, e)
                    consumer.close()
                    time.sleep(REGISTRY_RETRY_S)
                    consumer = self.runtime.log.consumer([CATALOG_TOPIC],
                                                         worker_group(self.runtime.settings.group_prefix))
                    continue
                self.runtime.log.flush()
                consumer.commit(records)
                idle_since = time.monotonic()
        finally:
            consumer.close()
        return self.stats

    def process(self, record: Record) -> None:
        try:
            event = self.runtime.codec.decode(record.value)
        except SchemaRegistryUnavailable:
            raise  # the registry's bad moment: the record is fine, and comes again
        except ReelStreamError as e:
            log.warning("skipping undecodable record %s/%d@%d: %s", record.topic, record.partition, record.offset, e)
            return
        if event.type != "TitleTranscoded":
            return
        try:
            events = self.handle(event)
        except ReelStreamError as e:
            # The packager removed what it wrote; the title stays TRANSCODED until it is
            # transcoded or its packaging is requested again. Not retried in a loop: a
            # missing key or a corrupt chunk does not heal by itself.
            self.stats.failed += 1
            log.error("packaging %s failed: %s", event["title_id"], e)
            return
        for out in events:
            self.runtime.publish(out, flush=False)

    def handle(self, transcoded: Event) -> list[Event]:
        """Package every scheme of a TitleTranscoded event; the events announcing them."""
        packages = [self._package(request) for request in plan(transcoded, self.schemes)]
        return packaged_events(transcoded, packages, self.producer)

    def _package(self, request: PackageRequest) -> Package:
        existing = self._published(request)
        if existing is not None:
            self.stats.reused += 1
            return existing
        if self.fault:
            self.fault(request)
        provider = self.key_provider() if request.scheme != "clear" else None
        package = package_title(self.runtime.objects, request.title_id, request.renditions, request.audio,
                                request.subtitles, request.scheme, provider,  # type: ignore[arg-type]
                                package_id=request.package_id, workers=self.threads)
        self.stats.packaged += 1
        log.info("packaged %s %s at %s", request.title_id, request.scheme, package.storage_prefix)
        return package

    def _published(self, request: PackageRequest) -> Package | None:
        try:
            return Package.from_json(self.runtime.objects.get(request.storage_prefix + "package.json").decode())
        except ObjectNotFound:
            return None
