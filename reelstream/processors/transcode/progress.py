"""Chunk progress per rendition, from transcode results.

Each row names the ingest attempt (correlation id) whose result wrote it: after a title is
ingested again its chunks show the new attempt's results as they come. A failure of one
attempt never replaces a chunk another attempt finished: a straggling ChunkFailed of an
earlier attempt would otherwise mark a chunk of the new one failed, and a chunk of the new
attempt cannot fail where an earlier one finished it (the worker answers the re-sent job
from its stored result). Results of a title are in order (one partition), so a replay folds
the same rows.
"""

from __future__ import annotations

from typing import Any

from reelstream.events.model import Event
from reelstream.processors.base import Outcome, Processor, StateReader
from reelstream.stores.ports import Column, ViewSpec

# Partition key: (title_id, rendition_id); clustering key: chunk_index. Completion reads one
# rendition's chunks in order.
CHUNK_PROGRESS = ViewSpec(
    name="chunk_progress", partition_key=("title_id", "rendition_id"), clustering_key=("chunk_index",),
    columns={"title_id": Column.TEXT, "rendition_id": Column.TEXT, "chunk_index": Column.INT,
             "status": Column.TEXT, "object_key": Column.TEXT, "size_bytes": Column.BIGINT,
             "duration_ms": Column.BIGINT, "bitrate_kbps": Column.INT, "psnr_db": Column.DOUBLE,
             "worker_id": Column.TEXT, "reason": Column.TEXT, "correlation_id": Column.TEXT},
    query="the chunks of one rendition of a title, in order",
)


class ChunkProgressProcessor(Processor):
    name = "chunk_progress"
    topics = ("reel.transcode.results",)
    views = (CHUNK_PROGRESS,)

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        if event.type not in ("ChunkTranscoded", "ChunkFailed"):
            return None  # audio results are tracked by the completion processor
        group_marker = f"group:{event['encoder_group']}"
        return CHUNK_PROGRESS, (event["title_id"], group_marker, event["chunk_index"])

    def handle(self, event: Event, state: StateReader) -> Outcome:
        title, chunk, attempt = event["title_id"], event["chunk_index"], event.header.correlation_id
        marker = f"group:{event['encoder_group']}"
        outcome = Outcome()
        if event.type == "ChunkFailed":
            current = state.get(CHUNK_PROGRESS, (title, marker, chunk))
            if current is not None and current.values["status"] == "DONE" and current.values["correlation_id"] != attempt:
                return outcome  # another attempt's failure: this chunk is done
        base = {"title_id": title, "chunk_index": chunk, "worker_id": event["worker_id"], "correlation_id": attempt}
        if event.type == "ChunkTranscoded":
            for out in event["outputs"]:
                outcome.write(CHUNK_PROGRESS, {
                    **base, "rendition_id": out["rendition_id"], "status": "DONE", "object_key": out["object_key"],
                    "size_bytes": out["size_bytes"], "duration_ms": out["duration_ms"],
                    "bitrate_kbps": out["bitrate_kbps"], "psnr_db": out["psnr_db"], "reason": None})
            status, reason = "DONE", None
        else:
            status, reason = ("FAILED" if event["final"] else "RETRYING"), event["reason"]
        # One marker row per (chunk, encoder group) records that the job's event was applied.
        outcome.write(CHUNK_PROGRESS, {**base, "rendition_id": marker, "status": status,
                                       "object_key": None, "size_bytes": None, "duration_ms": None,
                                       "bitrate_kbps": None, "psnr_db": None, "reason": reason})
        return outcome
