"""The transcode fleet as the planner sees it, and where a job goes.

Workers announce themselves on ``reel.workers`` (TranscodeWorkerStarted with their
capabilities, heartbeats, TranscodeWorkerStopped). This processor folds that into one
row per worker; ``job_topic`` (pure) routes a job: GPU-preferred jobs (HEVC UHD) go to
``reel.transcode.jobs.gpu``, which only GPU workers read, while at least one GPU worker is
alive, and to ``reel.transcode.jobs`` (every worker) otherwise, so a fleet without a live
GPU still encodes them, on CPU. A worker is alive until it stops or misses
``MISSED_BEATS`` heartbeats.

Limit: a job already on the GPU topic waits for a GPU worker if every GPU worker dies
after it was routed; the planner's next title goes to the CPU topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reelstream.events.model import Event
from reelstream.events.topics import GPU_JOBS_TOPIC
from reelstream.processors.base import Outcome, Processor, StateReader, millis
from reelstream.stores.ports import Column, ViewSpec

JOBS_TOPIC = "reel.transcode.jobs"
FLEET = "transcode"  # the one partition: the planner reads every worker at once (a fleet is small)
MISSED_BEATS = 3

# Partition key: fleet; clustering: worker_id. "Which workers are alive, and which have a GPU?"
TRANSCODE_WORKERS = ViewSpec(
    name="transcode_workers", partition_key=("fleet",), clustering_key=("worker_id",),
    columns={"fleet": Column.TEXT, "worker_id": Column.TEXT, "host": Column.TEXT, "gpu": Column.BOOLEAN,
             "encoders": Column.JSON, "last_seen_ms": Column.BIGINT, "heartbeat_ms": Column.BIGINT,
             "stopped": Column.BOOLEAN},
    query="the transcode workers of the fleet, their capabilities and last heartbeat",
)


class TranscodeFleetProcessor(Processor):
    name = "transcode_fleet"
    topics = ("reel.workers",)
    views = (TRANSCODE_WORKERS,)

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        return TRANSCODE_WORKERS, (FLEET, event["worker_id"])

    def handle(self, event: Event, state: StateReader) -> Outcome:
        current = state.get(TRANSCODE_WORKERS, (FLEET, event["worker_id"]))
        row: dict[str, Any] = dict(current.values) if current else {
            "fleet": FLEET, "worker_id": event["worker_id"], "host": None, "gpu": False, "encoders": [],
            "last_seen_ms": None, "heartbeat_ms": 10_000, "stopped": False}
        seen = millis(event.header.event_time)
        row["last_seen_ms"] = max(row["last_seen_ms"] or 0, seen or 0)
        match event.type:
            case "TranscodeWorkerStarted":
                row.update(host=event["host"], gpu=event["gpu"], encoders=list(event["encoders"]),
                           heartbeat_ms=event["heartbeat_ms"], stopped=False)
            case "TranscodeWorkerHeartbeat":
                row.update(gpu=event["gpu"], stopped=False)
            case "TranscodeWorkerStopped":
                row["stopped"] = True
        return Outcome().write(TRANSCODE_WORKERS, row)


def alive(worker: Mapping[str, Any], now_ms: int) -> bool:
    if worker["stopped"] or worker["last_seen_ms"] is None:
        return False
    return bool(now_ms - worker["last_seen_ms"] <= MISSED_BEATS * (worker["heartbeat_ms"] or 10_000))


def job_topic(prefer_gpu: bool, workers: Iterable[Mapping[str, Any]], now_ms: int) -> str:
    """Where a job goes: the GPU topic only while a GPU worker is alive to read it."""
    if prefer_gpu and any(w["gpu"] and alive(w, now_ms) for w in workers):
        return GPU_JOBS_TOPIC
    return JOBS_TOPIC
