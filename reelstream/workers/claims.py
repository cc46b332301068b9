"""Job claims: a lease in the object store, so a job is encoded by one worker at a time.

A consumer group can hand a partition to a new member while the old one is still encoding
a job from it (the embedded log rebalances at once when a member joins, and evicts a
member that has not polled for its session timeout, which a long encode can exceed). The
new member then reads the same uncommitted job. Without a claim it encodes it again: the
result is the same (deterministic keys and event ids) but the core is wasted.

The holder writes ``{worker, host, pid, until_ms}`` before encoding and renews it every
third of the lease while it works; another worker that finds a live claim waits for the
holder's result record instead of encoding. A claim is stale when its lease ran out, or
when its holder was on this host and its process is gone (a killed worker's job is taken
over at once). Two workers claiming in the same instant may both encode; that costs time,
never correctness.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from reelstream.errors import ChecksumMismatch, ObjectNotFound, ReelStreamError
from reelstream.stores.ports import ObjectStore

LEASE_S = 15.0
log = logging.getLogger(__name__)


@dataclass
class JobClaims:
    objects: ObjectStore
    worker_id: str
    lease_s: float = LEASE_S
    clock: Callable[[], float] = time.time
    host: str = field(default_factory=socket.gethostname)

    def held_by_other(self, key: str) -> str | None:
        """The worker holding a live claim on ``key``, if it is not this one."""
        claim = self._read(key)
        if claim is None:
            return None
        if claim.get("worker") == self.worker_id or float(str(claim.get("until_ms", 0))) < self.clock() * 1000:
            return None
        if claim.get("host") == self.host and not _alive(int(str(claim.get("pid", 0)))):
            return None
        return str(claim.get("worker"))

    def _read(self, key: str) -> dict[str, object] | None:
        # A renewal replaces the object while we read it; the local store can then show the
        # new bytes beside the old checksum for a moment (ChecksumMismatch): read again.
        for attempt in range(5):
            try:
                return dict(json.loads(self.objects.get(key)))
            except (ObjectNotFound, ValueError):
                return None
            except ChecksumMismatch:
                time.sleep(0.05 * (attempt + 1))
        return None  # still inconsistent: treat as no claim (at worst, one duplicate encode)

    def _write(self, key: str) -> None:
        claim = {"worker": self.worker_id, "host": self.host, "pid": os.getpid(),
                 "until_ms": int((self.clock() + self.lease_s) * 1000)}
        self.objects.put(key, json.dumps(claim).encode(), content_type="application/json")

    @contextmanager
    def holding(self, key: str) -> Iterator[None]:
        """Claim ``key`` for the duration of the block, renewing the lease in the background."""
        self._write(key)
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.lease_s / 3):
                try:
                    self._write(key)
                except ReelStreamError as e:  # a missed renewal only risks a duplicate encode
                    log.warning("could not renew the claim %s: %s", key, e)

        renewer = threading.Thread(target=renew, name=f"claim-{key}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()
            try:
                self.objects.delete(key)
            except ReelStreamError as e:  # the lease runs out by itself; raising would hide the job's outcome
                log.warning("could not release the claim %s: %s", key, e)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
