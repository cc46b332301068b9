"""GPU routing: the fleet view from worker events (capabilities forced), and where jobs go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from reelstream.events.codec import EventCodec
from reelstream.events.model import Event, new_event
from reelstream.events.topics import GPU_JOBS_TOPIC
from reelstream.processors.transcode.fleet import (
    FLEET,
    JOBS_TOPIC,
    TRANSCODE_WORKERS,
    TranscodeFleetProcessor,
    job_topic,
)
from reelstream.workers.capabilities import Capabilities
from tests.support.memory_state import MemoryState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)


def worker_event(kind: str, worker: str, gpu: bool, at_s: float, **extra: Any) -> Event:
    data: dict[str, Any] = {"worker_id": worker}
    if kind == "TranscodeWorkerStarted":
        data |= {"host": "h", "gpu": gpu, "hwaccel": gpu, "encoders": ["libx264"] + (["hevc_nvenc"] if gpu else []),
                 "cores": 8, "topics": [GPU_JOBS_TOPIC, JOBS_TOPIC] if gpu else [JOBS_TOPIC], "heartbeat_ms": 10_000}
    elif kind == "TranscodeWorkerHeartbeat":
        data |= {"gpu": gpu, "jobs_done": 3}
    else:
        data |= {"reason": "stopped"}
    event = new_event(kind, data | extra, producer="test", event_time=T0 + timedelta(seconds=at_s))
    EventCodec().encode(event)  # valid against its schema
    return event


def fleet(*events: Event) -> list[dict[str, Any]]:
    state, processor = MemoryState(), TranscodeFleetProcessor()
    for event in events:
        state.apply(processor.handle(event, state))
    return [row.values for row in state.query(TRANSCODE_WORKERS, (FLEET,))]


def test_gpu_preferred_jobs_go_to_the_gpu_topic_only_while_a_gpu_worker_is_alive() -> None:
    workers = fleet(worker_event("TranscodeWorkerStarted", "cpu-1", False, 0),
                    worker_event("TranscodeWorkerStarted", "gpu-1", True, 0),
                    worker_event("TranscodeWorkerHeartbeat", "gpu-1", True, 20))
    assert {w["worker_id"]: w["gpu"] for w in workers} == {"cpu-1": False, "gpu-1": True}
    assert job_topic(True, workers, MS0 + 25_000) == GPU_JOBS_TOPIC
    assert job_topic(False, workers, MS0 + 25_000) == JOBS_TOPIC  # H.264 SDR: every worker
    assert job_topic(True, workers, MS0 + 20_000 + 31_000) == JOBS_TOPIC  # three heartbeats missed: CPU
    stopped = fleet(worker_event("TranscodeWorkerStarted", "gpu-1", True, 0),
                    worker_event("TranscodeWorkerStopped", "gpu-1", True, 5))
    assert job_topic(True, stopped, MS0 + 6_000) == JOBS_TOPIC
    assert job_topic(True, fleet(worker_event("TranscodeWorkerStarted", "cpu-1", False, 0)), MS0) == JOBS_TOPIC
    assert job_topic(True, [], MS0) == JOBS_TOPIC  # no fleet view yet: CPU


def test_a_gpu_worker_reads_the_gpu_topic_first_and_advertises_it() -> None:
    from reelstream.workers.transcode import TranscodeWorker

    gpu = TranscodeWorker(runtime=None, worker_id="g", capabilities=Capabilities(True, "ffmpeg"))  # type: ignore[arg-type]
    cpu = TranscodeWorker(runtime=None, worker_id="c", capabilities=Capabilities(False, "ffmpeg"))  # type: ignore[arg-type]
    assert gpu.topics == [GPU_JOBS_TOPIC, JOBS_TOPIC] and cpu.topics == [JOBS_TOPIC]
    started = gpu.started_data()
    assert started["gpu"] and "hevc_nvenc" in started["encoders"] and started["topics"] == gpu.topics
    EventCodec().encode(new_event("TranscodeWorkerStarted", started, producer="test"))
