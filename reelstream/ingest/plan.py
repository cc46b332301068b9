"""Planning a validated title: the TranscodePlanned fact and one job per (chunk, encoder group).

Pure: the same inputs give the same events (ids aside), so it is unit-tested without media.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from reelstream.events.model import Event, new_event
from reelstream.events.partitioning import partition_for
from reelstream.media.ladder.analyze import Analysis
from reelstream.media.ladder.hull import ChosenRung, FixedRung, LadderPolicy, RatePoint, convex_hull
from reelstream.media.transcode.grid import chunk_frames, chunk_grid
from reelstream.media.transcode.ladder import Rung, groups
from reelstream.media.transcode.layout import audio_job_id, chunk_job_id

# Groups whose encodes are worth a GPU: UHD HEVC. Workers without one still take them.
GPU_GROUPS = frozenset({"hevc-hdr"})
AUDIO_KBPS = 128


@dataclass(frozen=True)
class SourceVideo:
    frame_rate: Fraction
    frame_count: int
    hdr: bool
    master_display: str | None = None
    max_cll: str | None = None


@dataclass(frozen=True)
class AudioPlan:
    track_id: str
    language: str
    audio_description: bool
    source_key: str
    stream_index: int


@dataclass(frozen=True)
class TextPlan:
    track_id: str
    language: str
    sdh: bool
    forced: bool
    object_key: str


def _fps_text(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}"


def plan_events(title_id: str, master_key: str, video: SourceVideo, rungs: Iterable[Rung],
                crfs: Mapping[str, float], audio: Iterable[AudioPlan], text: Iterable[TextPlan], *,
                producer: str, caused_by: Event, partitions: int = 12,
                encoded: Collection[tuple[str, int]] = ()) -> list[Event]:
    """The plan and the jobs. Job ids are slotted (``layout.chunk_job_id``): the title's jobs go
    round-robin over the ``partitions`` of the jobs topic, starting where its id hashes to.
    ``encoded``: (encoder group, chunk index) already encoded at planning (the calibration's
    kept samples): no job, and no slot, so the jobs that remain still spread evenly."""
    rungs, audio, text = list(rungs), list(audio), list(text)
    first = partition_for(title_id.encode(), partitions)
    slots = itertools.count(first)
    grid = chunk_grid(video.frame_count, video.frame_rate)
    fps = video.frame_rate

    def event(kind: str, data: dict[str, object]) -> Event:
        return new_event(kind, data, producer=producer, caused_by=caused_by)

    out = [event("TranscodePlanned", {
        "title_id": title_id, "master_key": master_key, "frame_rate": _fps_text(fps),
        "frame_count": video.frame_count, "chunk_frames": chunk_frames(fps), "chunk_count": len(grid),
        "renditions": [{"rendition_id": r.rendition_id, "encoder_group": r.encoder_group, "codec": r.codec,
                        "width": r.width, "height": r.height, "bitrate_kbps": r.bitrate_kbps, "hdr": r.hdr}
                       for r in rungs],
        "audio_tracks": [{"track_id": a.track_id, "language": a.language, "audio_description": a.audio_description}
                         for a in audio],
        "subtitle_tracks": [{"track_id": t.track_id, "language": t.language, "sdh": t.sdh, "forced": t.forced,
                             "object_key": t.object_key} for t in text],
    })]
    for group, members in groups(rungs).items():
        rung_data = [{"rendition_id": r.rendition_id, "codec": r.codec, "width": r.width, "height": r.height,
                      "bitrate_kbps": r.bitrate_kbps, "hdr": r.hdr, "crf": crfs.get(r.rendition_id)}
                     for r in members]
        for chunk in (c for c in grid if (group, c.index) not in encoded):
            out.append(event("ChunkTranscodeRequested", {
                "job_id": chunk_job_id(title_id, group, chunk.index, next(slots), partitions), "title_id": title_id, "encoder_group": group,
                "chunk_index": chunk.index, "source_key": master_key, "start_ms": chunk.start_ms(fps),
                "duration_ms": chunk.duration_ms(fps), "rungs": rung_data, "attempt": 1,
                "prefer_gpu": group in GPU_GROUPS, "frame_rate": _fps_text(fps), "start_frame": chunk.start_frame,
                "frame_count": chunk.frame_count, "source_hdr": video.hdr, "master_display": video.master_display,
                "max_cll": video.max_cll}))
    for track in audio:
        out.append(event("AudioTranscodeRequested", {
            "job_id": audio_job_id(title_id, track.track_id, next(slots), partitions), "title_id": title_id, "track_id": track.track_id,
            "language": track.language, "audio_description": track.audio_description,
            "source_key": track.source_key, "stream_index": track.stream_index, "bitrate_kbps": AUDIO_KBPS,
            "attempt": 1, "duration_ms": round(video.frame_count * 1000 / fps) if fps else 0}))
    return out


# -- per-title ladders: the measured points and the decision, as events (replayable: the
#    decision is ``hull.choose_rungs`` of the analysis's points under the recorded policy) --

SSIM_METHOD = ("each trial decoded and scaled (bicubic) to the master's resolution, compared with the master's "
               "own frames by ffmpeg's ssim filter; mean of the per-frame 'All' values (Y, U, V 4:1:1), "
               "frame-weighted over the sampled chunks")


def analysis_data(title_id: str, master_key: str, analysis: Analysis, analysis_ms: int,
                  encoder_group: str = "h264-sdr", method: str = SSIM_METHOD) -> dict[str, object]:
    return {"title_id": title_id, "master_key": master_key, "metric": "SSIM", "method": method,
            "codec": encoder_group.split("-")[0], "encoder_group": encoder_group, "preset": analysis.preset,
            "trial_crfs": list(analysis.crfs),
            "samples": [{"chunk_index": s.chunk.index, "start_frame": s.chunk.start_frame,
                         "frame_count": s.chunk.frame_count, "reason": s.reason} for s in analysis.samples],
            "scene_changes": [{"frame": f, "score": s} for f, s in analysis.scene_changes],
            "points": [{"width": p.width, "height": p.height, "crf": p.crf, "kbps": p.kbps, "peak_kbps": p.peak_kbps,
                        "score": p.ssim} for p in analysis.points],
            "analysis_ms": analysis_ms}


def points_of(analyzed: Mapping[str, Any]) -> list[RatePoint]:
    """The rate–quality points of a TitleComplexityAnalyzed event's data."""
    return [RatePoint(p["width"], p["height"], p["crf"], p["kbps"], p["score"], p["peak_kbps"])
            for p in analyzed["points"]]


def policy_of(chosen: Mapping[str, Any]) -> LadderPolicy:
    """The policy a TitleLadderChosen event's data was chosen under."""
    policy = dict(chosen["policy"])
    policy["fixed_rungs"] = tuple(FixedRung(f["width"], f["height"], f["kbps"]) for f in policy.get("fixed_rungs", ()))
    return LadderPolicy(**policy)


def per_title_rungs(chosen: Sequence[ChosenRung], encoder_group: str = "h264-sdr") -> tuple[list[Rung], dict[str, float]]:
    """The ladder's rungs (bitrate = the cap) and the CRF each is encoded at."""
    codec, dynamic = encoder_group.split("-")
    rungs = [Rung(codec, c.height, c.cap_kbps, hdr=dynamic == "hdr", width=c.width).check() for c in chosen]
    return rungs, {r.rendition_id: c.crf for r, c in zip(rungs, chosen, strict=True)}


def ladder_data(title_id: str, policy: LadderPolicy, points: Sequence[RatePoint], chosen: Sequence[ChosenRung],
                others: Sequence[Rung], analysis_event_id: str | None,
                encoder_group: str = "h264-sdr") -> dict[str, object]:
    """A PER_TITLE TitleLadderChosen for one encoder group: the hull, the chosen rungs, then
    ``others`` (rungs outside the analysis, kept from the fixed ladder and calibrated as usual)."""
    rungs, crfs = per_title_rungs(chosen, encoder_group)
    return {"title_id": title_id, "mode": "PER_TITLE", "encoder_group": encoder_group, "metric": "SSIM",
            "policy": {"rungs": policy.rungs, "floor_height": policy.floor_height, "floor_kbps": policy.floor_kbps,
                       "ceiling_kbps": policy.ceiling_kbps, "cap_ratio": policy.cap_ratio,
                       "peak_margin": policy.peak_margin, "min_rungs": policy.min_rungs,
                       "max_rungs": policy.max_rungs,
                       "fixed_rungs": [{"width": f.width, "height": f.height, "kbps": f.kbps}
                                       for f in policy.fixed_rungs],
                       "anchor_margin": policy.anchor_margin},
            "hull": [{"width": p.width, "height": p.height, "crf": p.crf, "kbps": p.kbps, "score": p.ssim}
                     for p in convex_hull(points)],
            "rungs": [{"rendition_id": r.rendition_id, "codec": r.codec, "width": r.width, "height": r.height,
                       "hdr": r.hdr, "cap_kbps": r.bitrate_kbps, "crf": crfs[r.rendition_id],
                       "expected_kbps": c.expected_kbps, "expected_score": c.expected_ssim, "fixed_rung": c.fixed}
                      for r, c in zip(rungs, chosen, strict=True)]
            + [{"rendition_id": r.rendition_id, "codec": r.codec, "width": r.width, "height": r.height, "hdr": r.hdr,
                "cap_kbps": r.bitrate_kbps, "crf": None, "expected_kbps": None, "expected_score": None,
                "fixed_rung": True}
               for r in others],
            "analysis_event_id": analysis_event_id}
