"""Planning a title into jobs, and the pure completion processor rebuilt from events."""

from __future__ import annotations

from fractions import Fraction

from reelstream.events.codec import EventCodec
from reelstream.events.model import Event, new_event
from reelstream.events.partitioning import partition_for
from reelstream.ingest.plan import AudioPlan, SourceVideo, TextPlan, plan_events
from reelstream.media.transcode.ladder import ladder_for
from reelstream.processors.transcode.completion import (
    ATTEMPT_CHUNKS,
    TRANSCODE_TITLES,
    TranscodeCompletionProcessor,
)
from tests.support.memory_state import MemoryState

CODEC = EventCodec()


def plan(title: str = "t1", seconds: int = 5) -> list[Event]:
    cause = new_event("IngestValidated", {}, producer="test", schema_version=1)
    rungs = ladder_for(3840, 2160, True, max_height=2160)
    return plan_events(title, f"titles/{title}/master/m.mov", SourceVideo(Fraction(24), 24 * seconds, True,
                                                                          "G(1,1)B(1,1)R(1,1)WP(1,1)L(1,1)", "1000,400"),
                       rungs, {"h264-240p-400k": 24.5}, [AudioPlan("audio-en", "en", False, "k", 0)],
                       [TextPlan("text-en", "en", False, False, f"titles/{title}/subtitles/text-en.vtt")],
                       producer="test", caused_by=cause)


def test_one_job_per_chunk_and_encoder_group_all_valid_events() -> None:
    events = plan()
    kinds = [e.type for e in events]
    assert kinds[0] == "TranscodePlanned" and kinds.count("AudioTranscodeRequested") == 1
    jobs = [e for e in events if e.type == "ChunkTranscodeRequested"]
    assert len(jobs) == 3 * 2  # 3 chunks x {h264-sdr, hevc-hdr}
    for event in events:
        CODEC.encode(event)  # every planned event matches its schema
    hevc = [j for j in jobs if j["encoder_group"] == "hevc-hdr"]
    assert all(j["prefer_gpu"] and j["source_hdr"] for j in hevc)
    assert [(j["start_frame"], j["frame_count"]) for j in hevc] == [(0, 48), (48, 48), (96, 24)]
    sdr = next(j for j in jobs if j["encoder_group"] == "h264-sdr")
    assert len(sdr["rungs"]) == 8 and sdr["rungs"][0]["crf"] == 24.5 and sdr["rungs"][1]["crf"] is None
    jobs = [j for j in plan("t2", 60) if j.type == "ChunkTranscodeRequested"]
    per_partition = [0] * 12
    for j in jobs:
        per_partition[partition_for(j["job_id"].encode(), 12)] += 1
    assert per_partition == [5] * 12  # 60 jobs round-robin over the 12 partitions: none waits behind another



def test_chunks_encoded_at_planning_get_no_job_and_no_slot() -> None:
    """The calibration's kept sample chunks are done: the other jobs still go round-robin."""
    cause = new_event("IngestValidated", {}, producer="test", schema_version=1)
    rungs = [r for r in ladder_for(1280, 720, False) if r.codec == "h264"]
    events = plan_events("t3", "titles/t3/master/m.mov", SourceVideo(Fraction(24), 24 * 26, False), rungs, {}, [],
                         [], producer="test", caused_by=cause, encoded={("h264-sdr", 6)})
    jobs = [e for e in events if e.type == "ChunkTranscodeRequested"]
    assert [j["chunk_index"] for j in jobs] == [i for i in range(13) if i != 6]
    per_partition = [0] * 12
    for j in jobs:
        per_partition[partition_for(j["job_id"].encode(), 12)] += 1
    assert sorted(per_partition) == [1] * 12  # 12 jobs, one per partition: the kept chunk took no slot

# Every event of one ingest shares its correlation id (a worker's result carries its job's).
INGEST = "ingest-t1-1"


def result(title: str, group: str, index: int, renditions: list[str], ingest: str = INGEST,
           size: int = 1000) -> Event:
    return new_event("ChunkTranscoded", {
        "job_id": f"{title}:{group}:{index}", "title_id": title, "encoder_group": group, "chunk_index": index,
        "worker_id": "w", "encode_ms": 1, "used_gpu": False,
        "outputs": [{"rendition_id": r, "object_key": "k", "size_bytes": size, "duration_ms": 2000, "frames": 48,
                     "bitrate_kbps": 4, "psnr_db": 40.0, "ssim": None} for r in renditions]},
        producer="test", correlation_id=ingest)


def run(events: list[Event], state: MemoryState | None = None) -> tuple[MemoryState, list[Event]]:
    state, processor, emitted = state or MemoryState(), TranscodeCompletionProcessor(), []
    for event in events:
        if processor.primary(event) is None:
            continue
        outcome = processor.handle(event, state)
        state.apply(outcome)
        emitted += outcome.events
    return state, emitted


def small_plan(title: str, ingest: str = INGEST, chunk_count: int = 3) -> Event:
    return new_event("TranscodePlanned", {
        "title_id": title, "master_key": "m", "frame_rate": "24/1", "frame_count": 100, "chunk_frames": 48,
        "chunk_count": chunk_count,
        "audio_tracks": [{"track_id": "audio-en", "language": "en", "audio_description": False}],
        "subtitle_tracks": [],
        "renditions": [{"rendition_id": r, "encoder_group": "h264-sdr", "codec": "h264", "width": 1, "height": 1,
                        "bitrate_kbps": 1, "hdr": False} for r in ("a", "b")]}, producer="test", correlation_id=ingest)


def audio_done(title: str, ingest: str = INGEST) -> Event:
    return new_event("AudioTranscoded", {"job_id": f"{title}:audio:audio-en", "title_id": title, "track_id": "audio-en",
                                         "worker_id": "w", "object_key": "k", "size_bytes": 1, "duration_ms": 1,
                                         "bitrate_kbps": 1}, producer="test", correlation_id=ingest)


def chunk_failed(title: str, index: int, ingest: str = INGEST, reason: str = "boom") -> Event:
    return new_event("ChunkFailed", {"job_id": f"{title}:h264-sdr:{index}", "title_id": title,
                                     "encoder_group": "h264-sdr", "chunk_index": index, "attempt": 3, "worker_id": "w",
                                     "reason": reason, "final": True}, producer="test", correlation_id=ingest)


def all_done(title: str, ingest: str) -> list[Event]:
    return [*[result(title, "h264-sdr", i, ["a", "b"], ingest) for i in range(3)], audio_done(title, ingest)]


def status(state: MemoryState, title: str = "t1") -> dict[str, object]:
    row = state.get(TRANSCODE_TITLES, (title,))
    assert row is not None
    return row.values


def test_renditions_complete_then_the_title_in_any_arrival_order_and_duplicates_change_nothing() -> None:
    chunks = [result("t1", "h264-sdr", i, ["a", "b"]) for i in range(3)]
    for order in ([small_plan("t1"), *chunks, chunks[1], audio_done("t1")],
                  [chunks[2], audio_done("t1"), chunks[0], small_plan("t1"), chunks[1], chunks[0]]):
        state, emitted = run(order)
        kinds = [e.type for e in emitted]
        assert kinds == ["RenditionCompleted", "RenditionCompleted", "TitleTranscoded"], order
        done = emitted[0]
        assert done["chunk_count"] == 3 and done["total_bytes"] == 3000 and done["chunk_duration_ms"] == 2000
        assert done["chunk_prefix"] == f"titles/t1/renditions/{done['rendition_id']}/chunks/"
        assert status(state)["status"] == "TRANSCODED"
        assert len(state.query(ATTEMPT_CHUNKS, ("t1", INGEST, "a"))) == 3
        for event in emitted:
            CODEC.encode(event)


def test_a_final_failure_fails_only_its_title() -> None:
    failed = chunk_failed("t1", 1)
    events = [small_plan("t1"), small_plan("t2"), failed, failed, *all_done("t2", INGEST)]
    state, emitted = run(events)
    assert [e.type for e in emitted if e["title_id"] == "t1"] == ["TitleTranscodeFailed"]
    assert status(state)["status"] == "FAILED"
    assert [e.type for e in emitted if e["title_id"] == "t2"][-1] == "TitleTranscoded"


def test_a_failed_title_ingested_again_is_transcoded() -> None:
    """The operator's case: the first ingest failed (a wrong bucket), the second succeeds."""
    state, emitted = run([small_plan("t1", "first"), chunk_failed("t1", 1, "first", "NoSuchBucket")])
    assert status(state)["status"] == "FAILED" and [e.type for e in emitted] == ["TitleTranscodeFailed"]

    state, emitted = run([small_plan("t1", "second")], state)
    assert (status(state)["status"], status(state)["reason"], status(state)["correlation_id"]) == (
        "TRANSCODING", None, "second")
    assert emitted == []

    state, emitted = run(all_done("t1", "second"), state)
    assert [e.type for e in emitted] == ["RenditionCompleted", "RenditionCompleted", "TitleTranscoded"]
    assert all(e.header.correlation_id == "second" for e in emitted)  # `reel ingest --follow` matches on it
    assert status(state)["status"] == "TRANSCODED"
    state, emitted = run([small_plan("t1", "second")], state)  # its plan again: the same ingest, nothing new
    assert emitted == [] and status(state)["status"] == "TRANSCODED"


def test_a_late_failure_of_an_earlier_ingest_does_not_fail_the_new_one() -> None:
    state, emitted = run([small_plan("t1", "first"), small_plan("t1", "second"),
                          chunk_failed("t1", 2, "first"),  # a straggler of the first ingest's retries
                          *all_done("t1", "second"), chunk_failed("t1", 0, "first")])
    assert [e.type for e in emitted] == ["RenditionCompleted", "RenditionCompleted", "TitleTranscoded"]
    assert status(state)["status"] == "TRANSCODED" and status(state)["reason"] is None


def test_results_of_an_earlier_ingest_do_not_count_toward_the_new_plan() -> None:
    # The first ingest finished rendition "a" in 3 chunks; the second plans 2 (a new master).
    first = [small_plan("t1", "first"), *[result("t1", "h264-sdr", i, ["a"], "first") for i in range(3)]]
    state, _ = run(first)
    state, emitted = run([small_plan("t1", "second", chunk_count=2), audio_done("t1", "second"),
                          result("t1", "h264-sdr", 0, ["a", "b"], "second", size=500)], state)
    assert emitted == [] and status(state)["renditions_done"] == []
    state, emitted = run([result("t1", "h264-sdr", 1, ["a", "b"], "second", size=500)], state)
    assert [e.type for e in emitted] == ["RenditionCompleted", "RenditionCompleted", "TitleTranscoded"]
    assert emitted[0]["chunk_count"] == 2 and emitted[0]["total_bytes"] == 1000  # its own chunks only


def test_results_and_failures_read_before_their_plan_count_when_it_arrives() -> None:
    """Two topics, no order between them: the second ingest's results may come before its plan."""
    early = [small_plan("t1", "first"), chunk_failed("t1", 1, "first"), *all_done("t1", "second")]
    state, emitted = run([*early, small_plan("t1", "second")])
    assert [e.type for e in emitted] == ["TitleTranscodeFailed", "RenditionCompleted", "RenditionCompleted",
                                         "TitleTranscoded"]
    assert status(state)["status"] == "TRANSCODED"
    # A final failure of the new ingest read before its plan fails it once the plan comes.
    state, emitted = run([small_plan("t1", "first"), chunk_failed("t1", 1, "second", "disk on fire"),
                          small_plan("t1", "second")])
    assert [e.type for e in emitted] == ["TitleTranscodeFailed"] and emitted[0]["reason"] == "disk on fire"
    assert status(state)["status"] == "FAILED" and status(state)["reason"] == "t1:h264-sdr:1: disk on fire"
