"""A schema registry that does not answer is not a bad record: the transcode and package
workers keep the record (uncommitted) and take it again, where they used to log it as
undecodable and commit past it (a transcode job or a title's packaging lost for good)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reelstream.config import Settings
from reelstream.errors import SchemaRegistryUnavailable
from reelstream.events.model import Event
from reelstream.runtime import Runtime
from reelstream.stores.ports import Record
from reelstream.workers import package
from reelstream.workers.capabilities import Capabilities
from reelstream.workers.package import CATALOG_TOPIC, PackageWorker, worker_group
from reelstream.workers.transcode import TranscodeWorker
from tests.support.events import registered


def registry_down_once(runtime: Runtime, monkeypatch: pytest.MonkeyPatch, how: str) -> list[int]:
    """The codec's first decode fails as a registry outage does; the count of decodes so far."""
    real_decode, calls = runtime.codec.decode, [0]

    def down_once(data: bytes) -> Event:
        calls[0] += 1
        if calls[0] == 1:
            raise SchemaRegistryUnavailable(f"schema registry http://registry:8081 {how}")
        return real_decode(data)

    monkeypatch.setattr(runtime.codec, "decode", down_once)
    return calls


def test_the_transcode_worker_hands_a_registry_outage_to_its_retry(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    worker = TranscodeWorker(runtime, "w1", Capabilities(False, "ffmpeg"), scratch=tmp_path / "scratch")

    def down(data: bytes) -> Event:
        raise SchemaRegistryUnavailable("schema registry http://registry:8081 is unreachable")

    monkeypatch.setattr(runtime.codec, "decode", down)
    with pytest.raises(SchemaRegistryUnavailable):  # run() pauses, reopens and takes the job again
        worker.process(Record("reel.transcode.jobs", 0, 0, b"job", b"\x00\x00\x00\x00\x01", 0))
    runtime.close()


def test_the_package_worker_takes_the_records_again_after_a_registry_outage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    runtime.publish(registered("t1"))
    calls = registry_down_once(runtime, monkeypatch, "answered 503")
    monkeypatch.setattr(package, "REGISTRY_RETRY_S", 0.0)

    def key_provider() -> Any:
        raise AssertionError("no title is packaged here")

    worker = PackageWorker(runtime, key_provider)
    worker.run(should_stop=lambda: False, idle_exit_s=1.0)
    assert calls[0] == 2  # decoded again once the registry answered
    committed = runtime.log.committed(worker_group(runtime.settings.group_prefix), CATALOG_TOPIC)
    assert sum(committed.values()) == 1
    runtime.close()


def test_a_gateway_follower_reads_the_record_again_after_a_registry_outage(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from reelstream.gateways import views

    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    runtime.publish(registered("t1"))
    calls = registry_down_once(runtime, monkeypatch, "is unreachable")
    monkeypatch.setattr(views, "RESTART_DELAY_S", 0.0)
    folded: list[str] = []

    class Titles:
        def apply(self, event: Event) -> None:
            folded.append(event["title_id"])
            stop.set()

        def wants(self, user_id: str) -> bool:
            return True

    stop = asyncio.Event()

    async def follow() -> None:
        await asyncio.wait_for(views.follow([Titles()], CATALOG_TOPIC, runtime.log, runtime.codec, stop, 0), 20)

    asyncio.run(follow())
    assert folded == ["t1"] and calls[0] == 2
    runtime.close()
