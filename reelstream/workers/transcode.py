"""`reel worker transcode`: one member of the transcode fleet.

Workers form a consumer group on ``reel.transcode.jobs``; the log splits the partitions
among however many there are, on however many machines. A job is committed only after
its outputs are stored and its result is durable, so a worker killed mid-job loses
nothing: the group hands its partitions to another member, which redoes the job.

A job is claimed (``claims.py``) while it is encoded, so a member that is handed the
partition mid-job waits for the holder's result instead of encoding it a second time.

Workers announce themselves on ``reel.workers`` (TranscodeWorkerStarted with their
capabilities, a heartbeat every ``HEARTBEAT_S``, TranscodeWorkerStopped); a GPU worker
also consumes ``reel.transcode.jobs.gpu`` (its own group), ahead of the CPU topic, where
the planner sends GPU-preferred jobs while a GPU worker is alive.

Idempotence: outputs go to deterministic keys, and a finished job leaves a record of its
result (``layout.job_record_key``); a redelivered job whose record exists re-emits that
result with the same event id instead of encoding again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from reelstream.errors import ReelStreamError, SchemaRegistryUnavailable
from reelstream.events.model import Event, new_event
from reelstream.events.topics import GPU_JOBS_TOPIC, SECONDARY_TOPICS
from reelstream.media.transcode import layout
from reelstream.media.transcode.chunk import EncodedChunk, encode_chunk
from reelstream.media.transcode.commands import ChunkEncode, RungEncode, audio_command
from reelstream.media.transcode.damage import MasterDamaged
from reelstream.media.transcode.run import MediaStopped, Supervisor, run
from reelstream.media.transcode.tonemap import peak_of, write_cube
from reelstream.runtime import Runtime
from reelstream.stores.ports import LogConsumer, ObjectStore, Record
from reelstream.workers.capabilities import Capabilities, detect, use_gpu
from reelstream.workers.claims import JobClaims

log = logging.getLogger(__name__)

JOBS_TOPIC = "reel.transcode.jobs"
MAX_ATTEMPTS = 3
HEARTBEAT_S = 10.0
CLAIM_POLL_S = 0.25
# While no job comes, a worker looks for one every IDLE_WAIT_S. The embedded log's poll
# re-reads SQLite every 20 ms while it waits: a worker idling through a title's ingest in a
# 0.5-s poll spent ~1 % of a core on it (0.19 s CPU per 20 s); this costs a job that comes
# to an idle worker at most 0.1 s before it starts (a chunk job takes seconds).
IDLE_WAIT_S = 0.1
# A stop request (SIGINT, SIGTERM) kills the job's media processes within STOP_POLL_S.
STOP_POLL_S = 0.1
# After a failure outside the encode (store, log), the worker waits RETRY_FIRST_S, doubling
# per failure in a row up to RETRY_MAX_S: long enough not to hammer a store that is down.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0
_RESULT_IDS = uuid.UUID("0b7d8a3e-5a55-4c53-9d3e-6f0e9b1c2d44")


def worker_group(prefix: str, topic: str = JOBS_TOPIC) -> str:
    return f"{prefix}.workers.transcode" + (".gpu" if topic == GPU_JOBS_TOPIC else "")


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
    _media: Supervisor = field(default_factory=Supervisor, init=False, repr=False)

    @property
    def producer(self) -> str:
        return f"worker.transcode@{self.worker_id}"

    @property
    def topics(self) -> list[str]:
        """GPU workers read the GPU topic first: the jobs that only they do well."""
        return [GPU_JOBS_TOPIC, JOBS_TOPIC] if self.capabilities.gpu else [JOBS_TOPIC]

    def run(self, should_stop: Callable[[], bool], idle_exit_s: float | None = None) -> WorkerStats:
        """Take jobs one at a time until ``should_stop()`` (or ``idle_exit_s`` without work).

        Asked to stop mid-job, the worker kills the job's media processes within ``STOP_POLL_S``
        and leaves the job uncommitted, for the group to hand out again: a stop is not a failure
        and uses up none of the job's attempts."""
        if self.capabilities.gpu:
            self.runtime.log.ensure_topics(SECONDARY_TOPICS)
        self._media = Supervisor()
        finished = threading.Event()
        watcher = threading.Thread(target=_stop_when, args=(should_stop, self._media, finished),
                                   name=f"stop-{self.worker_id}", daemon=True)
        watcher.start()
        self._announce("TranscodeWorkerStarted", self.started_data())
        reason = "stopped"
        try:
            with self._media.watching():
                reason = self._loop(should_stop, idle_exit_s)
        except BaseException as e:
            reason = f"{type(e).__name__}: {e}"[:500]
            raise
        finally:
            finished.set()
            watcher.join()
            self._announce("TranscodeWorkerStopped", {"worker_id": self.worker_id, "reason": reason})
        return self.stats

    def _loop(self, should_stop: Callable[[], bool], idle_exit_s: float | None) -> str:
        """Jobs until told to stop or idle; why it ended. A failure outside a job's encode (the
        object store, the claim, publishing, the log) is retried after a growing pause with the
        consumers reopened, so the job comes back (to this member or another): a store's or the
        log's bad moment must not end the worker, since nothing restarts it and the fleet would
        silently shrink."""
        consumers: list[LogConsumer] = []
        idle_since = beat = time.monotonic()
        failures = 0
        try:
            while not should_stop():
                if time.monotonic() - beat >= HEARTBEAT_S:
                    beat = time.monotonic()
                    self._announce("TranscodeWorkerHeartbeat", {"worker_id": self.worker_id,
                                                                "gpu": self.capabilities.gpu,
                                                                "jobs_done": self.stats.encoded})
                try:
                    consumers = consumers or self._consumers()
                    took = self._take_one(consumers)
                    failures = 0
                except MediaStopped as e:
                    log.info("stopping mid-job, the job is left to be handed out again: %s", e)
                    break
                except Exception as e:  # see the docstring; with its traceback when unexpected
                    failures += 1
                    pause = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (failures - 1))
                    log.warning("job handling failed (%d in a row), the job will come again; retrying in %.1fs: %s",
                                failures, pause, e, exc_info=not isinstance(e, ReelStreamError))
                    _close(consumers)
                    consumers = []
                    _pause(pause, should_stop)
                    idle_since = time.monotonic()
                    continue
                if took:
                    idle_since = time.monotonic()
                elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
                    return "idle"
                else:
                    time.sleep(IDLE_WAIT_S)
        finally:
            _close(consumers)
        return "stopped"

    def _consumers(self) -> list[LogConsumer]:
        prefix = self.runtime.settings.group_prefix
        return [self.runtime.log.consumer([t], worker_group(prefix, t)) for t in self.topics]

    def _take_one(self, consumers: list[LogConsumer]) -> bool:
        for consumer in consumers:
            records = consumer.poll(max_records=1, timeout=0.0)
            if records:
                for record in records:
                    self.process(record)
                self.runtime.log.flush()
                consumer.commit(records)
                return True
        return False

    def started_data(self) -> dict[str, Any]:
        caps = self.capabilities
        encoders = ["libx264", "libx265", *(["x265"] if shutil.which("x265") else []),
                    *(["h264_nvenc", "hevc_nvenc"] if caps.gpu else [])]
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return {"worker_id": self.worker_id, "host": socket.gethostname(), "gpu": caps.gpu, "hwaccel": caps.hwaccel,
                "encoders": encoders, "cores": cores, "topics": self.topics, "heartbeat_ms": int(HEARTBEAT_S * 1000)}

    def _announce(self, kind: str, data: dict[str, Any]) -> None:
        try:
            self.runtime.publish(new_event(kind, data, producer=self.producer))
        except ReelStreamError as e:  # the fleet view is advisory: a worker works without it
            log.warning("could not announce %s: %s", kind, e)

    def process(self, record: Record) -> None:
        try:
            job = self.runtime.codec.decode(record.value)
        except SchemaRegistryUnavailable:
            raise  # the registry's bad moment, not the job's: run() retries it, uncommitted
        except ReelStreamError as e:
            log.warning("skipping undecodable job at %s/%d@%d: %s", record.topic, record.partition, record.offset, e)
            return
        for event in self.handle(job):
            self.runtime.publish(event, flush=False)

    def handle(self, job: Event) -> list[Event]:
        """The events a job leads to: its result, or a failure (and a retry while attempts remain)."""
        stored = self._stored_result(job) or self._wait_for_holder(job)
        if stored is not None:
            self.stats.replayed += 1
            return [stored]
        with self._claims.holding(layout.job_claim_key(job["title_id"], job["job_id"])):
            return self._do(job)

    @property
    def _claims(self) -> JobClaims:
        return JobClaims(self.runtime.objects, self.worker_id)

    def _wait_for_holder(self, job: Event) -> Event | None:
        """While another live worker holds the job, wait for its result rather than encode it twice."""
        key = layout.job_claim_key(job["title_id"], job["job_id"])
        waited = False
        while (holder := self._claims.held_by_other(key)) is not None:
            if self._media.stopped:
                raise MediaStopped(f"stopped while waiting for {holder} to encode {job['job_id']}")
            if not waited:
                log.info("%s is being encoded by %s: waiting for its result", job["job_id"], holder)
                waited = True
            time.sleep(CLAIM_POLL_S)
        return self._stored_result(job) if waited else None

    def _do(self, job: Event) -> list[Event]:
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
        except MediaStopped:
            raise  # the worker is stopping: the job did not fail
        except (ReelStreamError, OSError) as e:
            # A damaged master decodes the same way on every worker: a retry only spends the fleet.
            return self._failed(job, str(e), retry=not isinstance(e, MasterDamaged))
        store_result(self.runtime.objects, result)
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
            return chunk_result(self.runtime.objects, job.data, encoded, self.worker_id,
                                int((time.monotonic() - started) * 1000), gpu)

    # -- audio ------------------------------------------------------------------------

    def _encode_audio(self, job: Event) -> dict[str, Any]:
        from reelstream.media import tools
        from reelstream.media.probe import probe, video_start
        from reelstream.media.transcode.damage import check_audio

        title = job["title_id"]
        source = self._master(title, job["source_key"])
        with tempfile.TemporaryDirectory(dir=self._dir("jobs"), prefix="audio-") as tmp:
            out = Path(tmp) / f"{job['track_id']}.mp4"
            done = run(audio_command(tools.ffmpeg(), source, job["stream_index"], job["language"],
                                     job["bitrate_kbps"], job["audio_description"], out, video_start(source),
                                     job["duration_ms"] / 1000 or None),
                       f"encoding {job['track_id']} of {title}")
            check_audio(done.stderr, f"audio stream {job['stream_index']} of {job['source_key']}")
            duration_ms = int(probe(out).duration_s * 1000)
            key = layout.audio_key(title, job["track_id"])
            info = self.runtime.objects.put(key, out, content_type="audio/mp4")
        return {"job_id": job["job_id"], "title_id": title, "track_id": job["track_id"], "worker_id": self.worker_id,
                "object_key": key, "size_bytes": info.size, "duration_ms": duration_ms,
                "bitrate_kbps": int(info.size * 8 / duration_ms) if duration_ms else 0}

    # -- failures, retries, stored results ----------------------------------------------

    def _failed(self, job: Event, reason: str, retry: bool = True) -> list[Event]:
        attempt = job["attempt"]
        final = attempt >= self.max_attempts or not retry
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
        again = new_event(job.type, {**job.data, "attempt": attempt + 1}, producer=self.producer, caused_by=job,
                          event_id=result_id(job["job_id"], attempt + 1, "retry"))
        return [failed, again]

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
        """The master (or sidecar) on local disk, once per worker machine: downloaded and
        verified, or hard-linked from a store on this machine (``ObjectStore.local_copy``).

        Workers on one machine share the scratch directory; the first to need a master fetches
        it under a lock while the others wait for it (each downloading its own copy cost a read,
        a SHA-256 and a write of the whole master per worker: ~1 s CPU for a 470 MB master)."""
        info = self.runtime.objects.head(key)
        local = self._dir("masters") / title / f"{(info.sha256 or 'nosha')[:16]}-{Path(key).name}"
        if local.exists():
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        with open(local.with_name(f".{local.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when this process dies
            if not local.exists():
                partial = local.with_name(f".{local.name}.{os.getpid()}")
                self.runtime.objects.local_copy(key, partial)
                os.replace(partial, local)
        return local


def chunk_result(objects: ObjectStore, job: Mapping[str, Any], encoded: Sequence[EncodedChunk], worker_id: str,
                 encode_ms: int, used_gpu: bool) -> dict[str, Any]:
    """Store a chunk job's outputs under their deterministic keys; its ChunkTranscoded data."""
    outputs = []
    for chunk in encoded:
        key = layout.chunk_key(job["title_id"], chunk.rendition_id, job["chunk_index"])
        objects.put(key, chunk.path, content_type="video/mp4")
        outputs.append({"rendition_id": chunk.rendition_id, "object_key": key, "size_bytes": chunk.size_bytes,
                        "duration_ms": chunk.duration_ms, "frames": chunk.frames, "bitrate_kbps": chunk.bitrate_kbps,
                        "psnr_db": chunk.psnr_db, "ssim": chunk.ssim})
    return {"job_id": job["job_id"], "title_id": job["title_id"], "encoder_group": job["encoder_group"],
            "chunk_index": job["chunk_index"], "worker_id": worker_id, "outputs": outputs, "encode_ms": encode_ms,
            "used_gpu": used_gpu}


def store_result(objects: ObjectStore, result: Event) -> None:
    """The job's record: a redelivered job re-emits this result (same event id) instead of encoding."""
    objects.put(layout.job_record_key(result["title_id"], result["job_id"]),
                json.dumps({"type": result.type, "event_id": result.event_id, "data": dict(result.data)}).encode(),
                content_type="application/json")


def _stop_when(should_stop: Callable[[], bool], media: Supervisor, finished: threading.Event) -> None:
    """Stop ``media`` as soon as ``should_stop()``: the worker's thread is busy in the encode."""
    while not finished.wait(STOP_POLL_S):
        if should_stop():
            media.stop()
            return


def _pause(seconds: float, should_stop: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while not should_stop() and time.monotonic() < deadline:
        time.sleep(min(IDLE_WAIT_S, max(0.0, deadline - time.monotonic())))


def _close(consumers: Sequence[LogConsumer]) -> None:
    """Leave the group (uncommitted jobs go to whichever member gets their partition)."""
    for consumer in consumers:
        try:
            consumer.close()
        except Exception as e:  # noqa: BLE001 -- a broken consumer is dropped either way; its session times out
            log.warning("could not close a consumer: %s", e)


def clear_scratch(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
