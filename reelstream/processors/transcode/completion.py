"""Transcode completion: a rendition is complete when every chunk of it is done; the title
moves on to packaging when every rendition and audio track is complete. Pure, and all of
it rebuilt from events (TranscodePlanned on reel.catalog, results on reel.transcode.results).

Results may be read before the plan (two topics, no order between them), so chunk rows are
kept either way and completeness is checked whenever either side arrives.
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
TRANSCODE_TITLES = ViewSpec(
    name="transcode_titles", partition_key=("title_id",), clustering_key=(),
    columns={"title_id": Column.TEXT, "status": Column.TEXT, "plan": Column.JSON, "renditions_done": Column.JSON,
             "audio_done": Column.JSON, "reason": Column.TEXT, "updated_ms": Column.BIGINT},
    query="a title's transcode status, plan and completed renditions, by title id",
)
# Partition key: (title_id, rendition_id); clustering: chunk_index. Counting one rendition's chunks.
RENDITION_CHUNKS = ViewSpec(
    name="rendition_chunks", partition_key=("title_id", "rendition_id"), clustering_key=("chunk_index",),
    columns={"title_id": Column.TEXT, "rendition_id": Column.TEXT, "chunk_index": Column.INT,
             "size_bytes": Column.BIGINT, "duration_ms": Column.BIGINT, "frames": Column.INT,
             "psnr_db": Column.DOUBLE},
    query="the finished chunks of one rendition of a title, in order",
)


class TranscodeCompletionProcessor(Processor):
    name = "transcode_completion"
    topics = ("reel.catalog", "reel.transcode.results")
    views = (TRANSCODE_TITLES, RENDITION_CHUNKS)

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        if event.type in ("TranscodePlanned", "ChunkTranscoded", "ChunkFailed", "AudioTranscoded"):
            return TRANSCODE_TITLES, (event["title_id"],)
        return None

    def handle(self, event: Event, state: StateReader) -> Outcome:
        title_id = event["title_id"]
        current = state.get(TRANSCODE_TITLES, (title_id,))
        row: dict[str, Any] = dict(current.values) if current else {
            "title_id": title_id, "status": TRANSCODING, "plan": None, "renditions_done": [], "audio_done": [],
            "reason": None, "updated_ms": None}
        row["updated_ms"] = millis(event.header.event_time)
        outcome = Outcome()
        fresh: dict[str, dict[int, int]] = {}  # rendition -> {chunk: size} written by this event
        match event.type:
            case "TranscodePlanned":
                row["plan"] = {k: v for k, v in event.data.items()}
            case "ChunkTranscoded":
                for out in event["outputs"]:
                    outcome.write(RENDITION_CHUNKS, {
                        "title_id": title_id, "rendition_id": out["rendition_id"], "chunk_index": event["chunk_index"],
                        "size_bytes": out["size_bytes"], "duration_ms": out["duration_ms"], "frames": out["frames"],
                        "psnr_db": out["psnr_db"]})
                    fresh.setdefault(out["rendition_id"], {})[event["chunk_index"]] = out["size_bytes"]
            case "AudioTranscoded":
                if event["track_id"] not in row["audio_done"]:
                    row["audio_done"] = [*row["audio_done"], event["track_id"]]
            case "ChunkFailed":
                if event["final"] and row["status"] != FAILED:
                    row["status"], row["reason"] = FAILED, f"{event['job_id']}: {event['reason']}"
                    outcome.events.append(new_event("TitleTranscodeFailed", {
                        "title_id": title_id, "job_id": event["job_id"], "reason": event["reason"]},
                        producer=PRODUCER, caused_by=event))
        if row["plan"] is not None and row["status"] == TRANSCODING:
            outcome.events += self._completions(row, fresh, state, event)
        return outcome.write(TRANSCODE_TITLES, row)

    def _completions(self, row: dict[str, Any], fresh: dict[str, dict[int, int]], state: StateReader,
                     cause: Event) -> list[Event]:
        plan, title_id, events = row["plan"], row["title_id"], []
        for rendition in plan["renditions"]:
            rid = rendition["rendition_id"]
            if rid in row["renditions_done"]:
                continue
            sizes = {r.values["chunk_index"]: r.values["size_bytes"]
                     for r in state.query(RENDITION_CHUNKS, (title_id, rid))}
            sizes.update(fresh.get(rid, {}))
            if len(sizes) < plan["chunk_count"]:
                continue
            total = sum(sizes.values())
            seconds = plan["frame_count"] * _fraction(plan["frame_rate"])
            row["renditions_done"] = [*row["renditions_done"], rid]
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
