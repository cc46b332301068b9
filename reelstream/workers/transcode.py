"""`reel worker transcode`: one member of the transcode fleet.

Workers form a consumer group on ``reel.transcode.jobs``; the log splits the partitions
among however many there are, on however many machines. A job is committed only after
its outputs are stored and its result is durable, so a worker killed mid-job loses
nothing: the group hands its partitions to another member, which redoes the job.

Idempotence: outputs go to deterministic keys, and a finished job leaves a record of its
result (``layout.job_record_key``); a redelivered job whose record exists re-emits that
result with the same event id instead of encoding again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from reelstream.errors import ReelStreamError
from reelstream.events.model import Event, new_event
from reelstream.media.transcode import layout
from reelstream.media.transcode.chunk import encode_chunk
from reelstream.media.transcode.commands import ChunkEncode, RungEncode, audio_command
from reelstream.media.transcode.run import run
from reelstream.media.transcode.tonemap import peak_of, write_cube
from reelstream.runtime import Runtime
from reelstream.stores.ports import Record
from reelstream.workers.capabilities import Capabilities, detect, use_gpu

log = logging.getLogger(__name__)

JOBS_TOPIC = "reel.transcode.jobs"
MAX_ATTEMPTS = 3
_RESULT_IDS = uuid.UUID("0b7d8a3e-5a55-4c53-9d3e-6f0e9b1c2d44")


def worker_group(prefix: str) -> str:
    return f"{prefix}.workers.transcode"


def result_id(job_id: str, attempt: int | None, kind: str) -> str:
    """Deterministic event id of a job's outcome, so a redelivered job's result de-duplicates."""
    return str(uuid.uuid5(_RESULT_IDS, f"{job_id}/{kind}/{attempt if attempt is not None else ''}"))


@dataclass
class WorkerStats:
    encoded: int = 0
    replayed: int = 0  # redelivered jobs answered from their stored result
    failed: int = 0
    retried: int = 0


@dataclass
class TranscodeWorker:
    runtime: Runtime
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    capabilities: Capabilities = field(default_factory=detect)
    scratch: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "reel-worker")
    threads: int = 0
    max_attempts: int = MAX_ATTEMPTS
    fault: Callable[[Event], None] | None = None  # tests: called before each encode, to inject failures
    stats: WorkerStats = field(default_factory=WorkerStats)

    @property
    def producer(self) -> str:
        return f"worker.transcode@{self.worker_id}"

    def run(self, should_stop: Callable[[], bool], idle_exit_s: float | None = None) -> WorkerStats:
        """Take jobs one at a time until ``should_stop()`` (or ``idle_exit_s`` without work)."""
        consumer = self.runtime.log.consumer([JOBS_TOPIC], worker_group(self.runtime.settings.group_prefix))
        idle_since = time.monotonic()
        try:
            while not should_stop():
                records = consumer.poll(max_records=1, timeout=0.5)
                if not records:
                    if idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                        break
                    continue
                for record in records:
                    self.process(record)
                self.runtime.log.flush()
                consumer.commit(records)
                idle_since = time.monotonic()
        finally:
            consumer.close()
        return self.stats

    def process(self, record: Record) -> None:
        try:
            job = self.runtime.codec.decode(record.value)
        except ReelStreamError as e:
            log.warning("skipping undecodable job at %s/%d@%d: %s", record.topic, record.partition, record.offset, e)
            return
        for event in self.handle(job):
            self.runtime.publish(event, flush=False)

    def handle(self, job: Event) -> list[Event]:
        """The events a job leads to: its result, or a failure (and a retry while attempts remain)."""
        stored = self._stored_result(job)
        if stored is not None:
            self.stats.replayed += 1
            return [stored]
        started = time.monotonic()
        try:
            if self.fault:
                self.fault(job)
            if job.type == "ChunkTranscodeRequested":
                data = self._encode_video(job, started)
                result = self._event("ChunkTranscoded", data, job, result_id(job["job_id"], None, "done"))
            else:
                data = self._encode_audio(job)
                result = self._event("AudioTranscoded", data, job, result_id(job["job_id"], None, "done"))
        except (ReelStreamError, OSError) as e:
            return self._failed(job, str(e))
        self.runtime.objects.put(layout.job_record_key(job["title_id"], job["job_id"]),
                                 json.dumps({"type": result.type, "event_id": result.event_id,
                                             "data": dict(result.data)}).encode(),
                                 content_type="application/json")
        self.stats.encoded += 1
        return [result]

    # -- video ------------------------------------------------------------------------

    def _encode_video(self, job: Event, started: float) -> dict[str, Any]:
        title, fps = job["title_id"], Fraction(job["frame_rate"] or "0")
        master = self._master(title, job["source_key"])
        rungs = tuple(RungEncode(r["rendition_id"], r["codec"], r["width"], r["height"], r["bitrate_kbps"], r["hdr"],
                                 r.get("crf")) for r in job["rungs"])
        frame_count = job["frame_count"] or round(job["duration_ms"] * fps / 1000)
        with tempfile.TemporaryDirectory(dir=self._dir("jobs"), prefix="job-") as tmp:
            outputs = tuple(Path(tmp) / f"{r.rendition_id}.mp4" for r in rungs)
            lut = (write_cube(self._dir("luts"), peak_of(job["master_display"], job["max_cll"]))
                   if job["source_hdr"] else None)
            gpu = use_gpu(job["prefer_gpu"], self.capabilities)
            encode = ChunkEncode(master=master, fps=fps, start_frame=job["start_frame"], frame_count=frame_count,
                                 rungs=rungs, outputs=outputs, source_hdr=job["source_hdr"],
                                 master_display=job["master_display"], max_cll=job["max_cll"], tonemap_lut=lut,
                                 threads=self.threads, gpu=gpu)
            encoded = encode_chunk(encode, self._dir("jobs"))
            results = []
            for chunk in encoded:
                key = layout.chunk_key(title, chunk.rendition_id, job["chunk_index"])
                self.runtime.objects.put(key, chunk.path, content_type="video/mp4")
                results.append({"rendition_id": chunk.rendition_id, "object_key": key, "size_bytes": chunk.size_bytes,
                                "duration_ms": chunk.duration_ms, "frames": chunk.frames,
                                "bitrate_kbps": chunk.bitrate_kbps, "psnr_db": chunk.psnr_db, "ssim": None})
        return {"job_id": job["job_id"], "title_id": title, "encoder_group": job["encoder_group"],
                "chunk_index": job["chunk_index"], "worker_id": self.worker_id, "outputs": results,
                "encode_ms": int((time.monotonic() - started) * 1000), "used_gpu": gpu}

    # -- audio ------------------------------------------------------------------------

    def _encode_audio(self, job: Event) -> dict[str, Any]:
        from reelstream.media import tools
        from reelstream.media.probe import probe

        title = job["title_id"]
        source = self._master(title, job["source_key"])
        with tempfile.TemporaryDirectory(dir=self._dir("jobs"), prefix="audio-") as tmp:
            out = Path(tmp) / f"{job['track_id']}.mp4"
            run(audio_command(tools.ffmpeg(), source, job["stream_index"], job["language"], job["bitrate_kbps"],
                              job["audio_description"], out), f"encoding {job['track_id']} of {title}")
            duration_ms = int(probe(out).duration_s * 1000)
            key = layout.audio_key(title, job["track_id"])
            info = self.runtime.objects.put(key, out, content_type="audio/mp4")
        return {"job_id": job["job_id"], "title_id": title, "track_id": job["track_id"], "worker_id": self.worker_id,
                "object_key": key, "size_bytes": info.size, "duration_ms": duration_ms,
                "bitrate_kbps": int(info.size * 8 / duration_ms) if duration_ms else 0}

    # -- failures, retries, stored results ----------------------------------------------

    def _failed(self, job: Event, reason: str) -> list[Event]:
        attempt = job["attempt"]
        final = attempt >= self.max_attempts
        log.warning("%s attempt %d failed%s: %s", job["job_id"], attempt, " for good" if final else "", reason)
        self.stats.failed += 1
        is_chunk = job.type == "ChunkTranscodeRequested"
        failed = self._event("ChunkFailed", {
            "job_id": job["job_id"], "title_id": job["title_id"],
            "encoder_group": job["encoder_group"] if is_chunk else "audio",
            "chunk_index": job["chunk_index"] if is_chunk else -1, "attempt": attempt, "worker_id": self.worker_id,
            "reason": reason[:2000], "final": final}, job, result_id(job["job_id"], attempt, "failed"))
        if final:
            return [failed]
        self.stats.retried += 1
        retry = new_event(job.type, {**job.data, "attempt": attempt + 1}, producer=self.producer, caused_by=job,
                          event_id=result_id(job["job_id"], attempt + 1, "retry"))
        return [failed, retry]

    def _stored_result(self, job: Event) -> Event | None:
        key = layout.job_record_key(job["title_id"], job["job_id"])
        if not self.runtime.objects.exists(key):
            return None
        doc = json.loads(self.runtime.objects.get(key))
        return self._event(doc["type"], doc["data"], job, doc["event_id"])

    def _event(self, kind: str, data: dict[str, Any], cause: Event, event_id: str) -> Event:
        return new_event(kind, data, producer=self.producer, caused_by=cause, event_id=event_id)

    # -- local files ----------------------------------------------------------------------

    def _dir(self, name: str) -> Path:
        path = self.scratch / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _master(self, title: str, key: str) -> Path:
        """The master (or sidecar) on local disk, downloaded once per worker machine and verified."""
        info = self.runtime.objects.head(key)
        local = self._dir("masters") / title / f"{(info.sha256 or 'nosha')[:16]}-{Path(key).name}"
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            partial = local.with_name(f".{local.name}.{os.getpid()}")
            self.runtime.objects.download(key, partial)
            os.replace(partial, local)
        return local


def clear_scratch(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
