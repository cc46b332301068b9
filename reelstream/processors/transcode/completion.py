"""Transcode completion: a rendition is complete when every chunk of it is done; the title
moves on to packaging when every rendition and audio track is complete. Pure, and all of
it rebuilt from events (TranscodePlanned on reel.catalog, results on reel.transcode.results).

Each ingest of a title is an attempt, named by the correlation id all its events share (a
worker's result carries its job's, and a job its plan's). A title's status is its latest
plan's attempt: a new TranscodePlanned starts afresh, so a title that failed is transcoded
once it is ingested again, and a result of an earlier attempt (a straggling ChunkFailed)
never counts toward a later one. A re-sent job of the new plan is not encoded again: the
worker answers it from the job's stored result, under the new plan's correlation id.

Results may be read before their plan (two topics, no order between them), so every result
is kept under its attempt, and an attempt is checked whenever its plan or a result of it
arrives. A title's plans are in order (one partition of reel.catalog), so which plan is the
latest does not depend on how the two topics interleave, and a replay folds the same rows.
"""

from __future__ import annotations

from typing import Any

from reelstream.events.model import Event, new_event
from reelstream.media.transcode.layout import chunk_prefix
from reelstream.processors.base import Outcome, Processor, StateReader, millis
from reelstream.stores.ports import Column, ViewSpec

PRODUCER = "processor.transcode_completion"
TRANSCODING, TRANSCODED, FAILED = "TRANSCODING", "TRANSCODED", "FAILED"

# Partition key: title_id. Read by the packager and `reel transcode status` for one title.
# correlation_id: the ingest attempt (of the latest plan) that status, reason and the lists describe.
TRANSCODE_TITLES = ViewSpec(
    name="transcode_titles", partition_key=("title_id",), clustering_key=(),
    columns={"title_id": Column.TEXT, "status": Column.TEXT, "plan": Column.JSON, "renditions_done": Column.JSON,
             "audio_done": Column.JSON, "reason": Column.TEXT, "updated_ms": Column.BIGINT,
             "correlation_id": Column.TEXT},
    query="a title's transcode status, plan and completed renditions, by title id",
)
# Partition key: title_id; clustering: correlation_id. What each attempt got before or after
# its plan arrived: the audio tracks done and its first job to fail for good.
TRANSCODE_ATTEMPTS = ViewSpec(
    name="transcode_attempts", partition_key=("title_id",), clustering_key=("correlation_id",),
    columns={"title_id": Column.TEXT, "correlation_id": Column.TEXT, "audio_done": Column.JSON,
             "failed_job": Column.TEXT, "reason": Column.TEXT},
    query="the audio tracks done and the final failure of each ingest attempt of a title",
)
# Partition key: (title_id, correlation_id, rendition_id); clustering: chunk_index. Counting
# one rendition's chunks of one attempt. (The attempt is in the key, so a new view: a key
# cannot be migrated, and the former `rendition_chunks` is no longer written.)
ATTEMPT_CHUNKS = ViewSpec(
    name="transcode_attempt_chunks", partition_key=("title_id", "correlation_id", "rendition_id"),
    clustering_key=("chunk_index",),
    columns={"title_id": Column.TEXT, "correlation_id": Column.TEXT, "rendition_id": Column.TEXT,
             "chunk_index": Column.INT, "size_bytes": Column.BIGINT, "duration_ms": Column.BIGINT,
             "frames": Column.INT, "psnr_db": Column.DOUBLE},
    query="the finished chunks of one rendition of a title in one ingest attempt, in order",
)


class TranscodeCompletionProcessor(Processor):
    name = "transcode_completion"
    topics = ("reel.catalog", "reel.transcode.results")
    views = (TRANSCODE_TITLES, TRANSCODE_ATTEMPTS, ATTEMPT_CHUNKS)

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        if event.type in ("TranscodePlanned", "ChunkTranscoded", "ChunkFailed", "AudioTranscoded"):
            return TRANSCODE_TITLES, (event["title_id"],)
        return None

    def handle(self, event: Event, state: StateReader) -> Outcome:
        title_id, attempt_id = event["title_id"], event.header.correlation_id
        current = state.get(TRANSCODE_TITLES, (title_id,))
        row: dict[str, Any] = dict(current.values) if current else {
            "title_id": title_id, "status": TRANSCODING, "plan": None, "renditions_done": [], "audio_done": [],
            "reason": None, "updated_ms": None, "correlation_id": None}
        # The latest event time, not the last one read: the same whatever order the topics are read in.
        row["updated_ms"] = max(row["updated_ms"] or 0, millis(event.header.event_time) or 0)
        stored = state.get(TRANSCODE_ATTEMPTS, (title_id, attempt_id))
        attempt: dict[str, Any] = dict(stored.values) if stored else {
            "title_id": title_id, "correlation_id": attempt_id, "audio_done": [], "failed_job": None, "reason": None}
        outcome = Outcome()
        fresh: dict[str, dict[int, int]] = {}  # rendition -> {chunk: size} written by this event
        match event.type:
            case "TranscodePlanned":
                if attempt_id != row["correlation_id"]:  # a new ingest: nothing of the last one carries over
                    row.update(status=TRANSCODING, reason=None, renditions_done=[], audio_done=[],
                               correlation_id=attempt_id)
                row["plan"] = {k: v for k, v in event.data.items()}
            case "ChunkTranscoded":
                for out in event["outputs"]:
                    outcome.write(ATTEMPT_CHUNKS, {
                        "title_id": title_id, "correlation_id": attempt_id, "rendition_id": out["rendition_id"],
                        "chunk_index": event["chunk_index"], "size_bytes": out["size_bytes"],
                        "duration_ms": out["duration_ms"], "frames": out["frames"], "psnr_db": out["psnr_db"]})
                    fresh.setdefault(out["rendition_id"], {})[event["chunk_index"]] = out["size_bytes"]
            case "AudioTranscoded":
                if event["track_id"] not in attempt["audio_done"]:
                    # Sorted: the same list whatever order the tracks finish in.
                    attempt["audio_done"] = sorted([*attempt["audio_done"], event["track_id"]])
                    outcome.write(TRANSCODE_ATTEMPTS, attempt)
            case "ChunkFailed":
                if event["final"] and attempt["failed_job"] is None:
                    attempt.update(failed_job=event["job_id"], reason=event["reason"])
                    outcome.write(TRANSCODE_ATTEMPTS, attempt)
        if attempt_id == row["correlation_id"] and row["plan"] is not None and row["status"] == TRANSCODING:
            outcome.events += self._settle(row, attempt, fresh, state, event)
        return outcome.write(TRANSCODE_TITLES, row)

    def _settle(self, row: dict[str, Any], attempt: dict[str, Any], fresh: dict[str, dict[int, int]],
                state: StateReader, cause: Event) -> list[Event]:
        """Fail the title's current attempt, or complete what of it is complete."""
        row["audio_done"] = attempt["audio_done"]
        if attempt["failed_job"] is None:
            return self._completions(row, fresh, state, cause)
        row["status"], row["reason"] = FAILED, f"{attempt['failed_job']}: {attempt['reason']}"
        return [new_event("TitleTranscodeFailed", {
            "title_id": row["title_id"], "job_id": attempt["failed_job"], "reason": attempt["reason"]},
            producer=PRODUCER, caused_by=cause)]

    def _completions(self, row: dict[str, Any], fresh: dict[str, dict[int, int]], state: StateReader,
                     cause: Event) -> list[Event]:
        plan, title_id, attempt_id, events = row["plan"], row["title_id"], row["correlation_id"], []
        for rendition in plan["renditions"]:
            rid = rendition["rendition_id"]
            if rid in row["renditions_done"]:
                continue
            sizes = {r.values["chunk_index"]: r.values["size_bytes"]
                     for r in state.query(ATTEMPT_CHUNKS, (title_id, attempt_id, rid))}
            sizes.update(fresh.get(rid, {}))
            if len(sizes) < plan["chunk_count"]:
                continue
            total = sum(sizes.values())
            seconds = plan["frame_count"] * _fraction(plan["frame_rate"])
            row["renditions_done"] = sorted([*row["renditions_done"], rid])  # the same in any arrival order
            events.append(new_event("RenditionCompleted", {
                "title_id": title_id, "rendition_id": rid, "chunk_count": plan["chunk_count"], "total_bytes": total,
                "avg_bitrate_kbps": int(total * 8 / 1000 / seconds) if seconds else 0,
                "encoder_group": rendition["encoder_group"], "codec": rendition["codec"], "width": rendition["width"],
                "height": rendition["height"], "bitrate_kbps": rendition["bitrate_kbps"], "hdr": rendition["hdr"],
                "frame_rate": plan["frame_rate"],
                "chunk_duration_ms": round(plan["chunk_frames"] * 1000 * _fraction(plan["frame_rate"])),
                "chunk_prefix": chunk_prefix(title_id, rid)}, producer=PRODUCER, caused_by=cause))
        renditions = {r["rendition_id"] for r in plan["renditions"]}
        tracks = {t["track_id"] for t in plan["audio_tracks"]}
        if renditions <= set(row["renditions_done"]) and tracks <= set(row["audio_done"]):
            row["status"] = TRANSCODED
            events.append(new_event("TitleTranscoded", {
                "title_id": title_id, "rendition_ids": sorted(renditions), "audio_track_ids": sorted(tracks),
                "subtitle_track_ids": sorted(t["track_id"] for t in plan["subtitle_tracks"]),
                "chunk_count": plan["chunk_count"]}, producer=PRODUCER, caused_by=cause))
        return events


def _fraction(text: str) -> float:
    """Seconds per frame, from a frame rate 'num/den'."""
    num, _, den = text.partition("/")
    return float(den or 1) / float(num) if float(num or 0) else 0.0
