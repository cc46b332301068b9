"""The gateways' publisher: ``emit`` hands events to the log without waiting for their
flush, a failed flush is counted and logged, and ``stop`` flushes what is pending."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.errors import EventLogError
from reelstream.events.model import new_event
from reelstream.gateways.publisher import Publisher
from reelstream.runtime import Runtime
from reelstream.stores.ports import EventLog


def denial(n: int) -> object:
    return new_event("LicenseDenied", {"user_id": f"u{n}", "device_id": "d", "title_id": "t", "key_ids": [],
                                       "reason": "NO_ENTITLEMENT", "detail": "no"}, producer="test")


class HeldFlush:
    """The real embedded log, with flushes held until released or failing: a slow or
    unreachable broker, which the embedded log cannot be made to be."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.release = threading.Event()
        self.fail = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.log, name)

    def flush(self, timeout: float = 30.0) -> None:
        self.release.wait(10)
        if self.fail:
            raise EventLogError("broker unreachable (injected)")
        self.log.flush(timeout)


def licenses_in(runtime: Runtime) -> int:
    return sum(runtime.log.end_offsets("reel.licenses").values())


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(Settings(data_dir=tmp_path / "reel"))
    yield rt
    rt.close()


async def test_emit_returns_before_the_flush_and_stop_flushes_what_is_pending(runtime: Runtime) -> None:
    held = HeldFlush(runtime.log)
    publisher = Publisher(held, runtime.codec)  # type: ignore[arg-type]
    publisher.start()
    publisher.emit([denial(1), denial(2)])  # returns although the flush is held
    published = asyncio.create_task(publisher.publish([denial(3)]))
    await asyncio.sleep(0.05)
    assert not published.done(), "publish waits for its flush"
    assert licenses_in(runtime) == 0 and publisher.delivered == 0
    held.release.set()
    await published
    publisher.emit([denial(4)])
    await publisher.stop()
    assert licenses_in(runtime) == 4 and publisher.delivered == 4 and publisher.failed == 0


async def test_a_failed_flush_is_counted_and_logged(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    held = HeldFlush(runtime.log)
    held.fail = True
    held.release.set()
    publisher = Publisher(held, runtime.codec)  # type: ignore[arg-type]
    publisher.start()
    with caplog.at_level(logging.ERROR, logger="reelstream.gateways.publisher"):
        publisher.emit([denial(1), denial(2)])
        await publisher.settled()
    assert publisher.failed == 2 and publisher.delivered == 0
    assert "2 gateway events may not have been delivered: broker unreachable" in caplog.text
    with pytest.raises(EventLogError):
        await publisher.publish([denial(3)])  # a waiting publisher hears of the failure
    held.fail = False
    await publisher.stop()
