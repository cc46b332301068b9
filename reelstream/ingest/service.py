"""The ingest service: what `reel ingest` and the HTTP endpoint both call.

files readable, log and store opened -> upload every file (resumable, SHA-256 while streaming) ->
TitleRegistered, MezzanineUploaded per file -> checks ->
IngestValidated or IngestRejected (every reason, files kept) -> subtitles to WebVTT ->
per-title CRF calibration -> TranscodePlanned and the jobs.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from reelstream.events.model import Event, new_event
from reelstream.events.topics import GPU_JOBS_TOPIC, SECONDARY_TOPICS, topic
from reelstream.ingest import subtitles
from reelstream.ingest.metadata import SidecarSpec, TitleMetadata, parse_metadata
from reelstream.ingest.per_title import choose_ladder
from reelstream.ingest.plan import AudioPlan, SourceVideo, TextPlan, plan_events
from reelstream.ingest.reasons import IngestRejected, Reason
from reelstream.ingest.upload import UploadReport, upload_resumable
from reelstream.ingest.validate import (
    MediaReport,
    check_ladder,
    check_master,
    check_sidecar_audio,
    check_subtitle,
    check_track_ids,
    unreadable_files,
)
from reelstream.media.probe import MediaInfo
from reelstream.media.transcode import layout
from reelstream.media.transcode.calibrate import Calibration, calibrate
from reelstream.media.transcode.commands import ChunkEncode, RungEncode
from reelstream.media.transcode.damage import MasterDamaged
from reelstream.media.transcode.grid import chunk_grid
from reelstream.media.transcode.ladder import DEFAULT_LADDER, Rung, groups, ladder_for
from reelstream.media.transcode.tonemap import peak_of, write_cube
from reelstream.processors.transcode.fleet import FLEET, TRANSCODE_WORKERS, job_topic
from reelstream.runtime import Runtime
from reelstream.workers.transcode import JOBS_TOPIC, chunk_result, result_id


class IngestProgress(Protocol):
    def hashing(self, name: str, done: int, total: int) -> None: ...

    def uploading(self, name: str, done: int, total: int) -> None: ...

    def step(self, message: str, reading: Path | None = None) -> None:
        """A step begins; ``reading``: the file its media commands read through (their progress)."""


class _Silent:
    def hashing(self, name: str, done: int, total: int) -> None:
        pass

    def uploading(self, name: str, done: int, total: int) -> None:
        pass

    def step(self, message: str, reading: Path | None = None) -> None:
        pass


@dataclass
class IngestResult:
    title_id: str
    master_key: str
    uploads: dict[str, UploadReport] = field(default_factory=dict)
    renditions: list[str] = field(default_factory=list)
    chunk_count: int = 0
    jobs: int = 0
    crfs: dict[str, float] = field(default_factory=dict)


@dataclass
class IngestService:
    runtime: Runtime
    ladder: tuple[Rung, ...] = DEFAULT_LADDER
    progress: IngestProgress = field(default_factory=_Silent)
    calibrate_rate: bool = True  # capped CRF calibrated per title (the per-chunk rate-control fix)
    fault: Any = None  # tests: called before each uploaded part, to interrupt an upload
    clock: Callable[[], float] = time.time  # routing: is a GPU worker's last heartbeat recent?

    @property
    def journal_dir(self) -> Path:
        return Path(self.runtime.settings.data_dir) / "uploads"

    def ingest(self, master: Path, metadata_path: Path) -> IngestResult:
        """Ingest ``master`` described by ``metadata_path``; raises IngestRejected with every reason.

        A missing or unreadable file, or a log or object store that cannot be opened, fails
        before anything is uploaded or published: the catalog is left as it was (no title
        left REGISTERED with nothing behind it, no existing title's metadata overwritten)."""
        try:
            doc = json.loads(metadata_path.read_text())
        except (OSError, ValueError) as e:
            raise IngestRejected(None, [Reason("METADATA_INVALID", None, f"{metadata_path}: {e}")]) from e
        meta, reasons = parse_metadata(doc)
        unreadable = unreadable_files(master, metadata_path.parent, meta)
        if meta is None or unreadable:  # no title id: nothing to record the rejection under
            raise IngestRejected(meta.title_id if meta else None, reasons + unreadable)
        # Both opened before the upload: a log or store that cannot be reached (an S3 endpoint
        # down, a bucket that does not exist) fails here, with nothing stored or published.
        _ = (self.runtime.log, self.runtime.objects)
        return self._ingest(master, metadata_path.parent, meta, reasons)

    def _ingest(self, master: Path, sidecar_dir: Path, meta: TitleMetadata, reasons: list[Reason]) -> IngestResult:
        correlation = f"ingest-{meta.title_id}-{uuid.uuid4().hex[:8]}"
        producer = self.runtime.settings.producer

        def publish(kind: str, data: dict[str, Any]) -> Event:
            event = new_event(kind, data, producer=producer, correlation_id=correlation)
            self.runtime.publish(event)
            return event

        result = IngestResult(meta.title_id, layout.master_key(meta.title_id, master.name))
        # Every file is stored before the first event: an upload cut off midway publishes
        # nothing, and running the ingest again resumes it.
        result.uploads["master"] = self._upload(result.master_key, master, "master")
        sidecars = {spec.file: sidecar_dir / spec.file for spec in meta.subtitles + meta.audio}
        stored = [(spec, self._upload(layout.sidecar_key(meta.title_id, spec.file), sidecars[spec.file], spec.file))
                  for spec in meta.subtitles + meta.audio]
        if not reasons:
            publish("TitleRegistered", meta.registered_data())
        publish("MezzanineUploaded", self._uploaded(meta.title_id, "MASTER", None, result.uploads["master"]))
        for spec, report in stored:
            publish("MezzanineUploaded", self._uploaded(meta.title_id, spec.kind.upper(), spec.language, report))
        reasons += self._check_checksum(master, meta, result.uploads["master"])
        self.progress.step("validating the master and sidecars", reading=master)
        media = MediaReport()
        check_master(master, meta, media)
        duration = media.master.duration_s if media.master else None
        for spec in meta.subtitles:
            check_subtitle(sidecars[spec.file], spec, int(duration * 1000) if duration else None, media)
        for spec in meta.audio:
            check_sidecar_audio(sidecars[spec.file], spec, duration, media)
        check_track_ids(meta, media)
        check_ladder(self.ladder, meta.license_terms["max_height"], media)
        reasons += media.reasons
        if reasons or media.master is None or media.master.video is None:
            publish("IngestRejected", {"title_id": meta.title_id, "reasons": [r.to_avro() for r in reasons],
                                       "object_key": result.master_key})
            raise IngestRejected(meta.title_id, reasons, uploaded=True)
        for note in media.unused_audio:
            self.progress.step(note)
        validated = publish("IngestValidated", self._validated(meta, result.master_key, media))
        try:
            self._plan(meta, master, media, validated, result)
        except MasterDamaged as e:  # the calibration's sample encodes decoded a damaged stretch
            reasons = [Reason("DECODE_FAILED", "master", str(e))]
            publish("IngestRejected", {"title_id": meta.title_id, "reasons": [r.to_avro() for r in reasons],
                                       "object_key": result.master_key})
            raise IngestRejected(meta.title_id, reasons, uploaded=True) from e
        return result

    def _upload(self, key: str, path: Path, name: str) -> UploadReport:
        return upload_resumable(self.runtime.objects, key, path, self.journal_dir,
                                progress=lambda done, total: self.progress.uploading(name, done, total),
                                hashing=lambda done, total: self.progress.hashing(name, done, total),
                                fault=self.fault)

    @staticmethod
    def _uploaded(title_id: str, kind: str, language: str | None, report: UploadReport) -> dict[str, Any]:
        return {"title_id": title_id, "asset_kind": kind, "language": language, "object_key": report.info.key,
                "size_bytes": report.info.size, "sha256": report.info.sha256 or ""}

    @staticmethod
    def _check_checksum(master: Path, meta: TitleMetadata, report: UploadReport) -> list[Reason]:
        declared = meta.master_sha256
        sidecar = master.with_name(master.name + ".sha256")
        if declared is None and sidecar.is_file():
            declared = (sidecar.read_text().split() or [""])[0].lower()
        if declared is None:
            return [Reason("METADATA_INVALID", "master.sha256",
                           f"no checksum: give master.sha256 in the metadata or a {sidecar.name} file")]
        size = report.info.size
        if meta.master_size is not None and size < meta.master_size:
            return [Reason("TRUNCATED_UPLOAD", "master", f"{size} bytes arrived, the metadata declares "
                                                         f"{meta.master_size}; upload the complete file")]
        if report.info.sha256 != declared:
            return [Reason("CHECKSUM_MISMATCH", "master.sha256", f"the uploaded master hashes to "
                                                                 f"{report.info.sha256}, not {declared}")]
        return []

    def _audio_tracks(self, meta: TitleMetadata, master_key: str, media: MediaReport) -> list[AudioPlan]:
        from reelstream.ingest.languages import primary

        assert media.master is not None
        tracks = [AudioPlan(layout.audio_track_id(primary(a.language) or "und", False), primary(a.language) or "und",
                            False, master_key, a.index) for a in media.master_audio]
        for spec in meta.audio:
            lang = primary(spec.language) or spec.language
            tracks.append(AudioPlan(layout.audio_track_id(lang, spec.audio_description), lang,
                                    spec.audio_description, layout.sidecar_key(meta.title_id, spec.file), 0))
        return tracks

    def _validated(self, meta: TitleMetadata, master_key: str, media: MediaReport) -> dict[str, Any]:
        info: MediaInfo = media.master  # type: ignore[assignment]
        video = info.video
        assert video is not None
        audio = [{"language": t.language, "channels": 2, "codec": "aac", "audio_description": t.audio_description,
                  "object_key": None if t.source_key == master_key else t.source_key}
                 for t in self._audio_tracks(meta, master_key, media)]
        for entry, stream in zip(audio, media.master_audio):
            entry.update(channels=stream.channels, codec=stream.codec)
        return {"title_id": meta.title_id, "master_key": master_key, "duration_ms": int(info.duration_s * 1000),
                "video": {"codec": video.codec, "width": video.width, "height": video.height,
                          "frame_rate": video.frame_rate_text, "color_transfer": video.color_transfer,
                          "color_primaries": video.color_primaries, "hdr": video.hdr},
                "audio_tracks": audio,
                "subtitle_tracks": [{"language": s.language, "format": "srt" if s.file.endswith(".srt") else "webvtt",
                                     "sdh": s.sdh, "forced": s.forced,
                                     "object_key": layout.sidecar_key(meta.title_id, s.file)} for s in meta.subtitles]}

    def _plan(self, meta: TitleMetadata, master: Path, media: MediaReport, validated: Event,
              result: IngestResult) -> None:
        info = media.master
        assert info is not None and info.video is not None
        video = info.video
        text = []
        for spec in meta.subtitles:
            track = layout.text_track_id(spec.language, spec.sdh, spec.forced)
            key = layout.subtitle_key(meta.title_id, track)
            self.runtime.objects.put(key, subtitles.to_webvtt(media.subtitles[spec.file]).encode(),
                                     content_type="text/vtt")
            text.append(TextPlan(track, spec.language, spec.sdh, spec.forced, key))
        rungs = ladder_for(*video.display_size, video.hdr, self.ladder, meta.license_terms["max_height"])
        ladder = choose_ladder(self.runtime.settings.ladder_mode, master, video, rungs, meta.title_id,
                               result.master_key, producer=self.runtime.settings.producer, caused_by=validated,
                               step=self.progress.step)
        for event in ladder.events:  # the measured points and the decision, before the plan that uses it
            self.runtime.publish(event)
        rungs, validated = ladder.rungs, ladder.last or validated
        grid = chunk_grid(video.frame_count, video.frame_rate)
        crfs: dict[str, float] = dict(ladder.crfs)
        kept: dict[tuple[str, int], Calibration] = {}  # (encoder group, chunk) -> its calibration
        # threads=1: the sample encodes kept as final outputs are made exactly as a worker would.
        base = ChunkEncode(master=master, fps=video.frame_rate, start_frame=0, frame_count=0, rungs=(), outputs=(),
                           source_hdr=video.hdr, master_display=video.master_display, max_cll=video.max_cll,
                           tonemap_lut=write_cube(Path(tempfile.gettempdir()), peak_of(video.master_display,
                                                                                       video.max_cll))
                           if video.hdr else None, threads=1)
        with tempfile.TemporaryDirectory(prefix="calibrate-kept-") as keep:
            if self.calibrate_rate:
                self.progress.step(f"calibrating rate control for {len(rungs)} rungs")
                for name, group in groups(rungs).items():
                    if all(r.rendition_id in crfs for r in group):
                        continue  # CRFs chosen per title
                    calibration = calibrate(master, video.frame_rate, grid, [_encode_of(r) for r in group],
                                            base=base, scratch=Path(tempfile.gettempdir()),
                                            keep_in=Path(keep) / name)
                    crfs.update(calibration.crfs)
                    kept.update({(name, index): calibration for index in calibration.kept})
            events = plan_events(meta.title_id, result.master_key,
                                 SourceVideo(video.frame_rate, video.frame_count, video.hdr, video.master_display,
                                             video.max_cll),
                                 rungs, crfs, self._audio_tracks(meta, result.master_key, media), text,
                                 producer=self.runtime.settings.producer, caused_by=validated,
                                 partitions=self.runtime.log.partitions(JOBS_TOPIC), encoded=set(kept))
            # The kept sample chunks are done: no job (no worker round trip, no slot), their
            # outputs stored now and their results published with the plan.
            events += [self._kept(meta.title_id, group, index, calibration, validated)
                       for (group, index), calibration in sorted(kept.items())]
        route = self._router()
        for event in events:
            if event.type == "ChunkTranscodeRequested" and route(event["prefer_gpu"]) == GPU_JOBS_TOPIC:
                gpu_topic = topic(GPU_JOBS_TOPIC)
                self.runtime.log.append(GPU_JOBS_TOPIC, gpu_topic.key_of(event),
                                        self.runtime.codec.encode(event, GPU_JOBS_TOPIC))
            else:
                self.runtime.publish(event, flush=False)
        self.runtime.log.flush()
        result.renditions = [r.rendition_id for r in rungs]
        result.chunk_count = len(grid)
        result.jobs = sum(e.type.endswith("Requested") for e in events)
        result.crfs = crfs


    def _router(self) -> Callable[[bool], str]:
        """GPU-preferred jobs to the GPU topic while the fleet view shows a live GPU worker."""
        self.runtime.state.ensure_views([TRANSCODE_WORKERS])
        workers = [row.values for row in self.runtime.state.query(TRANSCODE_WORKERS, (FLEET,))]
        now_ms = int(self.clock() * 1000)
        if any(w["gpu"] for w in workers):
            self.runtime.log.ensure_topics(SECONDARY_TOPICS)
        return lambda prefer_gpu: job_topic(prefer_gpu, workers, now_ms)

    def _kept(self, title_id: str, group: str, index: int, calibration: Calibration, cause: Event) -> Event:
        """The calibration's encode of this chunk is its final output: stored, and its ChunkTranscoded."""
        job_id = layout.chunk_job_id(title_id, group, index)
        job = {"job_id": job_id, "title_id": title_id, "encoder_group": group, "chunk_index": index}
        data = chunk_result(self.runtime.objects, job, calibration.kept[index],
                            f"ingest@{self.runtime.settings.producer}", calibration.encode_ms[index], False)
        return new_event("ChunkTranscoded", data, producer=self.runtime.settings.producer, caused_by=cause,
                         event_id=result_id(job_id, None, "done"))


def _encode_of(rung: Rung) -> RungEncode:
    return RungEncode(rung.rendition_id, rung.codec, rung.width, rung.height, rung.bitrate_kbps, rung.hdr)


__all__ = ["IngestRejected", "IngestResult", "IngestService", "SidecarSpec"]
