"""A title that failed is ingested again, on the embedded runtime: the completion processor,
`reel ingest --follow` and `reel ladder` read the log as it is, older attempts and records
that are no event included."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import pytest

from reelstream.cli import main
from reelstream.cli.media import follow
from reelstream.config import Settings
from reelstream.events.model import Event, new_event
from reelstream.ingest.plan import analysis_data, ladder_data
from reelstream.ingest.service import IngestService
from reelstream.media import tools
from reelstream.media.ladder.analyze import Analysis, Sample
from reelstream.media.ladder.hull import LadderPolicy, choose_rungs
from reelstream.media.transcode.grid import chunk_grid
from reelstream.media.transcode.ladder import Rung
from reelstream.processors.embedded import run_embedded
from reelstream.processors.replay import diff_states, rebuild
from reelstream.processors.runner import ProcessorRunner
from reelstream.processors.transcode.completion import (
    TRANSCODE_TITLES,
    TranscodeCompletionProcessor,
)
from reelstream.runtime import Runtime
from reelstream.stores.embedded_log import EmbeddedConsumer
from reelstream.stores.factory import open_state
from reelstream.stores.ports import Record
from reelstream.workers.capabilities import Capabilities
from reelstream.workers.transcode import TranscodeWorker
from tests.functional.test_transcode_embedded import deliver
from tests.unit.ingest.test_plan_and_completion import INGEST, all_done, chunk_failed, small_plan
from tests.unit.media.ladder.test_hull import points

NOT_AVRO = b"not avro at all"


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return Runtime(Settings(data_dir=tmp_path / "reel"))


def publish(runtime: Runtime, *events: Event) -> None:
    for event in events:
        runtime.publish(event)


def records(runtime: Runtime, topics: list[str]) -> list[Record]:
    reader = runtime.log.consumer(topics, group_id=None)
    try:
        return reader.poll(max_records=100_000, timeout=1)
    finally:
        reader.close()


def catalog(runtime: Runtime) -> list[Event]:
    return [runtime.codec.decode(r.value) for r in records(runtime, ["reel.catalog"]) if r.value != NOT_AVRO]


def complete(runtime: Runtime) -> None:
    """The completion processor over everything in the log (what it applied already is skipped)."""
    processor = TranscodeCompletionProcessor()
    ProcessorRunner(processor, runtime.log, runtime.state, runtime.codec, "test").process(
        records(runtime, list(processor.topics)))


def put_bad_record(runtime: Runtime, topic: str) -> None:
    runtime.log.append(topic, b"t1", NOT_AVRO)  # the title's own partition: read before its events
    runtime.log.flush()


def test_a_failed_title_ingested_again_is_transcoded_and_its_replay_agrees(runtime: Runtime, tmp_path: Path) -> None:
    publish(runtime, small_plan("t1", "first"), chunk_failed("t1", 1, "first", "NoSuchBucket"))
    complete(runtime)
    publish(runtime, *all_done("t1", "second")[:2])  # the second ingest's first results, before its plan
    publish(runtime, small_plan("t1", "second"), *all_done("t1", "second")[2:])
    publish(runtime, chunk_failed("t1", 2, "first", "a straggler of the first ingest"))
    complete(runtime)

    ends = [(e.type, e.header.correlation_id) for e in catalog(runtime) if e.type.startswith("Title")]
    assert ends == [("TitleTranscodeFailed", "first"), ("TitleTranscoded", "second")]
    row = runtime.state.get(TRANSCODE_TITLES, ("t1",))
    assert row is not None and (row.values["status"], row.values["reason"]) == ("TRANSCODED", None)
    # `reel replay --verify`: rebuilt from the log (the topics interleaved as a poll reads
    # them, not as they were applied above), the views equal the live ones.
    processor = TranscodeCompletionProcessor()
    fresh = open_state(f"sqlite:///{tmp_path / 'replay.db'}")
    rebuild(processor, runtime.log, fresh, runtime.codec)
    assert diff_states(processor, runtime.state, fresh) == []


def test_follow_shows_this_ingest_and_not_an_earlier_ones_failure(
        runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    publish(runtime, small_plan("t1", "first"), chunk_failed("t1", 1, "first", "NoSuchBucket"))
    complete(runtime)
    publish(runtime, small_plan("t1", "second"), chunk_failed("t1", 0, "first", "late"), *all_done("t1", "second"))
    complete(runtime)

    assert follow(runtime, "t1", timeout=30) == 0
    shown = capsys.readouterr()
    assert "t1: transcoded" in shown.out and "FAILED" not in shown.err and "NoSuchBucket" not in shown.err


def test_follow_reports_the_failure_of_its_own_ingest(runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    publish(runtime, small_plan("t1", "first"), *all_done("t1", "first"))
    publish(runtime, small_plan("t1", "second"), chunk_failed("t1", 2, "second", "disk on fire"))
    complete(runtime)

    assert follow(runtime, "t1", timeout=30) == 1
    assert "t1: FAILED: t1:h264-sdr:2: disk on fire" in capsys.readouterr().err


def test_follow_skips_a_record_that_is_no_event(runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    put_bad_record(runtime, "reel.catalog")
    put_bad_record(runtime, "reel.transcode.results")
    publish(runtime, small_plan("t1"), *all_done("t1", INGEST))
    complete(runtime)

    assert follow(runtime, "t1", timeout=30) == 0
    shown = capsys.readouterr()
    assert "t1: transcoded" in shown.out
    assert re.search(r"skipping undecodable record reel\.catalog/\d+@0: not a ReelStream event", shown.err)
    assert re.search(r"skipping undecodable record reel\.transcode\.results/\d+@0", shown.err)


def ladder_events(title: str) -> list[Event]:
    pts = points()
    policy = LadderPolicy(rungs=10, ceiling_kbps=6000)
    grid = chunk_grid(240, Fraction(24))
    analysis = Analysis([Sample(grid[1], "SPREAD")], pts, [])
    analyzed = new_event("TitleComplexityAnalyzed", analysis_data(title, f"titles/{title}/m.mp4", analysis, 1),
                         producer="test")
    chosen = new_event("TitleLadderChosen", ladder_data(title, policy, pts, choose_rungs(pts, policy), [],
                                                        analyzed.event_id), producer="test", caused_by=analyzed)
    return [analyzed, chosen]


def test_ladder_skips_a_record_that_is_no_event(
        runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    put_bad_record(runtime, "reel.catalog")
    publish(runtime, *ladder_events("t1"))

    assert main(["ladder", "t1", "--replay", "--data-dir", str(tmp_path / "reel")]) == 0
    shown = capsys.readouterr()
    assert "t1: per_title ladder" in shown.out.lower() and "replay: the same ladder" in shown.out
    assert re.search(r"reel ladder: skipping undecodable record reel\.catalog/\d+@0", shown.err)


def test_ladder_tells_an_unknown_title_from_one_with_no_ladder(
        runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    publish(runtime, *ladder_events("t1")[:1])  # an analysis, no ladder chosen yet
    assert main(["ladder", "t1", "--data-dir", str(tmp_path / "reel")]) == 2
    assert "no ladder chosen for 't1'" in capsys.readouterr().err
    assert main(["ladder", "nope", "--data-dir", str(tmp_path / "reel")]) == 2
    assert "no title 'nope' in reel.catalog" in capsys.readouterr().err


def test_ladder_reads_the_catalog_to_its_end_when_a_poll_returns_early(
        runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kafka's poll returns what one fetch brought, however many records are asked for."""
    earlier = [ladder_events("t1")[0] for _ in range(3)]  # analyses of earlier ingests, then this one's
    publish(runtime, *earlier, *ladder_events("t1"))
    polled = EmbeddedConsumer.poll

    def one_fetch(self: EmbeddedConsumer, max_records: int = 500, timeout: float = 1.0) -> list[Record]:
        return polled(self, min(max_records, 3), timeout)

    monkeypatch.setattr(EmbeddedConsumer, "poll", one_fetch)
    assert main(["ladder", "t1", "--replay", "--data-dir", str(tmp_path / "reel")]) == 0


@contextmanager
def transcoding(runtime: Runtime, worker: TranscodeWorker) -> Iterator[None]:
    """A worker and the completion processor running, each on a thread of its own."""
    stop_worker, stop_completion, loop = threading.Event(), asyncio.Event(), asyncio.new_event_loop()
    threads = [threading.Thread(target=worker.run, args=(stop_worker.is_set,)),
               threading.Thread(target=loop.run_until_complete, args=(run_embedded(
                   [TranscodeCompletionProcessor()], runtime.log, runtime.state, runtime.codec, "test",
                   stop_completion),))]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop_worker.set()
        loop.call_soon_threadsafe(stop_completion.set)
        for thread in threads:
            thread.join()
        loop.close()


def test_a_title_that_failed_is_transcoded_when_ingested_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The operator's case: the first ingest fails (a wrong bucket), the cause is fixed, the
    title is ingested again: `--follow` follows the new ingest, which completes."""
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    master, metadata = deliver(tmp_path / "studio", "film", seconds=3)
    ingest = IngestService(runtime, (Rung("h264", 144, 200),), calibrate_rate=False)
    broken = threading.Event()
    broken.set()

    def wrong_bucket(job: Event) -> None:
        if broken.is_set() and job.type == "ChunkTranscodeRequested" and job["chunk_index"] == 1:
            raise OSError("NoSuchBucket: reel-typo")

    worker = TranscodeWorker(runtime, "w1", Capabilities(False, tools.ffmpeg()), scratch=tmp_path / "scratch",
                             threads=1, fault=wrong_bucket)
    ingest.ingest(master, metadata)
    with transcoding(runtime, worker):
        assert follow(runtime, "film", timeout=120) == 1
    assert "film: FAILED" in capsys.readouterr().err

    broken.clear()
    ingest.ingest(master, metadata)
    with transcoding(runtime, worker):
        assert follow(runtime, "film", timeout=120) == 0
    assert "film: transcoded" in capsys.readouterr().out
    assert main(["transcode", "film", "--data-dir", str(tmp_path / "reel")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["status"], shown["reason"]) == ("TRANSCODED", None)
    ends = [e.type for e in catalog(runtime) if e.type in ("TitleTranscoded", "TitleTranscodeFailed")]
    assert ends == ["TitleTranscodeFailed", "TitleTranscoded"]
    assert worker.stats.replayed >= 2  # the chunks the first ingest did were not encoded again
