"""The media checks of an ingest, each failure a Reason with its IngestRejectionCode."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reelstream.ingest import subtitles
from reelstream.ingest.languages import primary
from reelstream.ingest.metadata import SidecarSpec, TitleMetadata
from reelstream.ingest.reasons import Reason
from reelstream.media import timestamps
from reelstream.media.probe import AudioInfo, MediaInfo, VideoInfo, decode_errors, probe
from reelstream.media.transcode.ladder import Rung, ladder_for
from reelstream.media.transcode.layout import audio_track_id, text_track_id
from reelstream.media.transcode.run import MediaCommandFailed

# Codecs a mezzanine may use: production and distribution codecs ffmpeg decodes frame-exactly.
VIDEO_CODECS = frozenset({"prores", "dnxhd", "h264", "hevc", "mpeg2video", "ffv1", "v210", "rawvideo", "jpeg2000",
                          "vp9", "av1"})
MIN_DURATION_S, MAX_DURATION_S = 1.0, 6 * 3600.0
DURATION_TOLERANCE_S = 2.0
# How far the frame grid (frame n at n / frame rate) may stray from the master's own timestamps
# before picture and sound visibly part: lip sync is noticed from about 45 ms early or 125 ms
# late (ITU-R BT.1359); a variable-frame-rate master strays by seconds.
FRAME_TIMING_TOLERANCE_S = 0.1


@dataclass
class MediaReport:
    master: MediaInfo | None = None
    reasons: list[Reason] = field(default_factory=list)
    sidecar_audio: dict[str, MediaInfo] = field(default_factory=dict)  # file -> probe
    master_audio: list[AudioInfo] = field(default_factory=list)  # the master's streams that become tracks
    unused_audio: list[str] = field(default_factory=list)  # why each other stream is not one
    subtitles: dict[str, list[subtitles.Cue]] = field(default_factory=dict)  # file -> cues


def unreadable_files(master: Path, sidecar_dir: Path, meta: TitleMetadata | None) -> list[Reason]:
    """The delivery's files that are missing or cannot be read, checked before anything is
    uploaded or published: a rejection for these leaves no trace in the store or the catalog."""
    reasons = []
    if (problem := _unreadable(master)) is not None:
        reasons.append(Reason("PROBE_FAILED", "master", f"{problem}; give the path of the studio master"))
    for spec in (meta.subtitles + meta.audio) if meta else []:
        path = sidecar_dir / spec.file
        if (problem := _unreadable(path)) is not None:
            code, name = ("SUBTITLE_INVALID", "subtitles") if spec.kind == "subtitle" else ("AUDIO_INVALID", "audio")
            reasons.append(Reason(code, f"{name}/{spec.file}", f"{problem}; put it next to the metadata file"))
    return reasons


def _unreadable(path: Path) -> str | None:
    if not path.exists():
        return f"{path}: no such file"
    if not path.is_file():  # a directory, or a FIFO an upload would block on
        return f"{path} is not a regular file"
    try:
        path.open("rb").close()
    except OSError as e:
        return f"{path} cannot be read: {e.strerror or e}"
    return None


def check_master(path: Path, meta: TitleMetadata, report: MediaReport) -> None:
    try:
        info = probe(path)
    except MediaCommandFailed as e:
        report.reasons.append(Reason("PROBE_FAILED", "master", f"ffprobe cannot read the master: {e}"))
        return
    report.master = info
    video = info.video
    if video is None:
        report.reasons.append(Reason("PROBE_FAILED", "master", "the master has no video stream"))
        return
    if video.codec not in VIDEO_CODECS:
        report.reasons.append(Reason("UNSUPPORTED_CODEC", "master",
                                     f"video codec {video.codec!r} is not a mezzanine codec; deliver one of "
                                     f"{', '.join(sorted(VIDEO_CODECS))}"))
    if video.frame_rate <= 0 or video.frame_count <= 0:
        report.reasons.append(Reason("PROBE_FAILED", "master", "no frame rate or frame count could be read"))
    if video.indexed_frames and video.frame_count < video.indexed_frames:
        # A copy cut short keeps the index written first (faststart MP4): the frames it lists
        # past the cut are missing, which showed only as a decode error or a duration mismatch.
        report.reasons.append(Reason("TRUNCATED_UPLOAD", "master", (
            f"the file is cut short: its index lists {video.indexed_frames} video frames, only "
            f"{video.frame_count} are in it; deliver the complete file (compare its size with the studio's)")))
    problems = decode_errors(path)
    if problems:
        report.reasons.append(Reason("DECODE_FAILED", "master", "; ".join(problems)))
    _check_duration(info, meta, report)
    _check_frame_timing(path, info, video, report)
    _check_languages(info, meta, report)
    report.master_audio, report.unused_audio = one_stream_per_language(info.audio)


def _check_duration(info: MediaInfo, meta: TitleMetadata, report: MediaReport) -> None:
    duration = info.duration_s
    if not MIN_DURATION_S <= duration <= MAX_DURATION_S:
        report.reasons.append(Reason("DURATION_INVALID", "master",
                                     f"duration {duration:.3f}s is outside {MIN_DURATION_S:g}s..{MAX_DURATION_S:g}s"))
    if meta.expected_duration_s is not None and abs(duration - meta.expected_duration_s) > DURATION_TOLERANCE_S:
        report.reasons.append(Reason("DURATION_INVALID", "expected_duration_s",
                                     f"the master runs {duration:.3f}s, the metadata says {meta.expected_duration_s:g}s"))
    video = info.video
    if video is not None and video.frame_rate > 0:
        video_s = float(video.frame_count / video.frame_rate)
        if abs(video_s - duration) > DURATION_TOLERANCE_S:
            report.reasons.append(Reason("DURATION_INVALID", "master",
                                         f"the video runs {video_s:.3f}s but the file {duration:.3f}s"))


def _check_frame_timing(path: Path, info: MediaInfo, video: VideoInfo, report: MediaReport) -> None:
    """Chunks are cut and timed by frame count at the nominal rate (``grid.py``). A variable-frame-rate
    master (phones, screen captures, edits of mixed rates) has timestamps that are not: its average
    rate differs from the nominal one, and its video would end early and drift from its sound; or
    a stretch of it runs at another rate, and drifts there. One reason at most: the first found."""
    if video.frame_rate <= 0 or video.frame_count <= 0:
        return
    try:
        # The frames' own duration where the container's is missing or short (a Matroska file
        # written to a pipe): the windows are spread over the frames there are.
        matroska = "matroska" in info.format_name
        sample = timestamps.sample(path, max(info.duration_s, float(video.frame_count / video.frame_rate)),
                                   indexed=not matroska or timestamps.matroska_has_cues(path))
    except MediaCommandFailed as e:
        report.reasons.append(Reason("PROBE_FAILED", "master", f"cannot read the video's timestamps: {e}"))
        return
    fix = (f"so picture and sound would drift apart; deliver a constant-frame-rate master "
           f"(e.g. ffmpeg -vf fps={video.frame_rate_text} ...)")
    rate, on_grid = float(video.frame_rate), float(video.frame_count / video.frame_rate)
    # MP4/MOV's average rate is its frames over the track's duration, summed from the real sample
    # durations; elsewhere it is a claim (Matroska's DefaultDuration, MPEG-TS's guess from its
    # first frames, MXF's edit rate), so the span is measured.
    span = sample.span(video.frame_rate) if "mov" not in info.format_name.split(",") else (
        video.frame_count / video.avg_frame_rate if video.avg_frame_rate > 0 else None)
    if span is not None and abs(on_grid - float(span)) > FRAME_TIMING_TOLERANCE_S:
        report.reasons.append(Reason("DURATION_INVALID", "master", (
            f"variable frame rate: {video.frame_count} frames at the nominal {rate:.3f} fps run {on_grid:.3f}s, "
            f"their timestamps {float(span):.3f}s (average {float(video.frame_count / span):.3f} fps), {fix}")))
        return
    for window in (sample.first, *sample.inner, sample.last):
        drift, at = window.drift(video.frame_rate)
        if drift > FRAME_TIMING_TOLERANCE_S:
            start = float(window.times[0])
            report.reasons.append(Reason("DURATION_INVALID", "master", (
                f"variable frame rate: in the {len(window.times)} frames from {start:.3f}s, frame {at} is stamped "
                f"{float(window.times[at]):.3f}s, {float(drift):.3f}s off where the nominal {rate:.3f} fps puts it "
                f"({start + at / rate:.3f}s), {fix}")))
            return


def _check_languages(info: MediaInfo, meta: TitleMetadata, report: MediaReport) -> None:
    declared = {primary(x) for x in meta.audio_languages}
    in_master = [primary(a.language) for a in info.audio]
    for i, lang in enumerate(in_master):
        if lang is None:
            report.reasons.append(Reason("LANGUAGE_MISMATCH", f"master audio stream {i}",
                                         "has no language tag; tag every audio stream (e.g. 'eng')"))
        elif lang not in declared:
            report.reasons.append(Reason("LANGUAGE_MISMATCH", f"master audio stream {i}",
                                         f"is in {lang!r}, which audio_languages does not list"))
    delivered = set(in_master) | {primary(s.language) for s in meta.audio if not s.audio_description}
    silent = not info.audio and not meta.audio
    for lang in sorted(x for x in declared - delivered if x):
        hint = "; a master without sound declares audio_languages [\"zxx\"] (no linguistic content)" if silent else ""
        report.reasons.append(Reason("LANGUAGE_MISMATCH", "audio_languages",
                                     f"lists {lang!r} but neither the master nor a sidecar carries it{hint}"))


def one_stream_per_language(streams: list[AudioInfo]) -> tuple[list[AudioInfo], list[str]]:
    """The master's streams that become audio tracks, and a note for each that does not. Masters
    carry a language's 5.1 mix beside its stereo one; every track is encoded AAC stereo, so one
    stream per language is kept: the first with at most two channels (the studio's own stereo
    mix, not a downmix), else the first. Both had been refused as one track id."""
    chosen: dict[str | None, AudioInfo] = {}
    for stream in streams:
        lang = primary(stream.language)
        held = chosen.get(lang)
        if lang is None or held is None or (held.channels > 2 >= stream.channels):
            chosen[lang if lang is not None else f"#{stream.index}"] = stream
    kept = sorted(chosen.values(), key=lambda a: a.index)
    notes = [f"master audio stream {s.index} ({primary(s.language)}, {s.channels} channels) is not used: stream "
             f"{chosen[primary(s.language)].index} ({chosen[primary(s.language)].channels} channels) carries that "
             "language (tracks are stereo)" for s in streams if s not in kept]
    return kept, notes


def check_subtitle(path: Path, spec: SidecarSpec, duration_ms: int | None, report: MediaReport) -> None:
    name = f"subtitles/{spec.file}"
    try:
        _, cues = subtitles.parse(subtitles.decode(path.read_bytes()))
    except (OSError, subtitles.SubtitleError) as e:
        report.reasons.append(Reason("SUBTITLE_INVALID", name, f"not readable SRT/WebVTT: {e}"))
        return
    problems = subtitles.timing_problems(cues, duration_ms)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        report.reasons.append(Reason("SUBTITLE_INVALID", name, "; ".join(problems[:3]) + more))
        return
    report.subtitles[spec.file] = cues


def check_sidecar_audio(path: Path, spec: SidecarSpec, master_duration: float | None, report: MediaReport) -> None:
    name = f"audio/{spec.file}"
    try:
        info = probe(path)
    except MediaCommandFailed as e:
        report.reasons.append(Reason("AUDIO_INVALID", name, f"ffprobe cannot read it: {e}"))
        return
    if len(info.audio) != 1:
        report.reasons.append(Reason("AUDIO_INVALID", name, f"needs exactly one audio stream, has {len(info.audio)}"))
        return
    problems = decode_errors(path)
    if problems:
        report.reasons.append(Reason("AUDIO_INVALID", name, "; ".join(problems)))
    if master_duration and abs(info.duration_s - master_duration) > DURATION_TOLERANCE_S:
        report.reasons.append(Reason("AUDIO_INVALID", name, f"runs {info.duration_s:.3f}s, the master "
                                                            f"{master_duration:.3f}s"))
    tagged = primary(info.audio[0].language)
    if tagged is not None and tagged != primary(spec.language):
        report.reasons.append(Reason("LANGUAGE_MISMATCH", name, f"is tagged {tagged!r}, the metadata says "
                                                                f"{spec.language!r}"))
    report.sidecar_audio[spec.file] = info


def check_track_ids(meta: TitleMetadata, report: MediaReport) -> None:
    """Every audio and subtitle track needs a track id of its own. Audio is named by primary
    language and audio description (``fr-CA`` and the master's ``fra`` are both ``audio-fr``),
    subtitles by tag, SDH and forced: two tracks under one id would be planned as one, the
    second's object written over the first's."""
    named: dict[str, str] = {}

    def claim(track: str, name: str, code: str) -> None:
        if track not in named:
            named[track] = name
            return
        report.reasons.append(Reason(code, name, f"would be track {track!r}, as {named[track]} is, and one would "
                                                 "overwrite the other; deliver one track per language and kind "
                                                 "(audio description, SDH, forced), or leave this one out"))

    for spec in meta.subtitles:
        claim(text_track_id(spec.language, spec.sdh, spec.forced), f"subtitles/{spec.file}", "SUBTITLE_INVALID")
    for stream in report.master_audio:
        claim(audio_track_id(primary(stream.language) or "und", False), f"master audio stream {stream.index}",
              "AUDIO_INVALID")
    for spec in meta.audio:
        claim(audio_track_id(primary(spec.language) or spec.language, spec.audio_description), f"audio/{spec.file}",
              "AUDIO_INVALID")


def check_ladder(ladder: tuple[Rung, ...], max_height: int | None, report: MediaReport) -> None:
    """At least one rung of the ladder must fit the master (no rung above its picture or the
    license's max_height, HDR rungs only from HDR): a plan with no video rendition was
    transcoded (audio only) and then never packaged, the title stuck at TRANSCODED."""
    video = report.master.video if report.master else None
    if video is None or ladder_for(*video.display_size, video.hdr, ladder, max_height):
        return
    width, height = video.display_size
    usable = [r.height for r in ladder if video.hdr or not r.hdr]  # an SDR master gets no HDR rung
    cap = f", the license's max_height {max_height}" if max_height else ""
    if not usable:
        fix = "the ladder has only HDR rungs: ingest with a ladder (--ladder) that has SDR rungs"
    else:
        fix = (f"the lowest rung is {min(usable)}p: deliver a master of at least {min(usable)} lines, or ingest "
               f"with a ladder (--ladder) that has a rung at or below {min(height, max_height or height)}p")
    report.reasons.append(Reason("OTHER", "master", f"no rung of the ladder fits the master ({width}x{height}"
                                                    f"{' HDR' if video.hdr else ''}{cap}), so the title would have "
                                                    f"no video; {fix}"))
