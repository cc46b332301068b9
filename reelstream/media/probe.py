"""What a master (or sidecar) contains, from ffprobe, and whether its ends decode cleanly."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from reelstream.media import tools
from reelstream.media.transcode.run import MediaCommandFailed, run, run_with_readers

HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})  # PQ (HDR10) and HLG
INTERLACED_ORDERS = frozenset({"tt", "bb", "tb", "bt"})  # ffprobe's field_order of interlaced video


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    width: int
    height: int
    frame_rate: Fraction
    frame_count: int
    pix_fmt: str
    color_transfer: str | None
    color_primaries: str | None
    color_space: str | None
    master_display: str | None = None  # x265 syntax, from the SMPTE ST 2086 side data
    max_cll: str | None = None  # "MaxCLL,MaxFALL"
    sample_aspect: Fraction = Fraction(1)  # SAR: anamorphic masters (DVD, HDV) store non-square pixels
    rotation: int = 0  # degrees, from the display matrix (phone footage): ffmpeg's decode applies it
    avg_frame_rate: Fraction = Fraction(0)  # frames over the stream's duration; 0: unknown
    indexed_frames: int | None = None  # frames the container's index lists (MP4/MOV); None: no index

    @property
    def hdr(self) -> bool:
        return self.color_transfer in HDR_TRANSFERS

    @property
    def display_size(self) -> tuple[int, int]:
        """The picture as it is meant to be seen, the size rungs take their aspect ratio from:
        square pixels (width times SAR), and turned as the display matrix says, because ffmpeg
        decodes a rotated master upright. The stored size squeezed anamorphic 16:9 into 5:4
        and a portrait phone clip into landscape."""
        width = max(1, round(self.width * self.sample_aspect))
        return (self.height, width) if self.rotation % 180 == 90 else (width, self.height)

    @property
    def frame_rate_text(self) -> str:
        return f"{self.frame_rate.numerator}/{self.frame_rate.denominator}"


@dataclass(frozen=True)
class AudioInfo:
    index: int  # among the file's audio streams (ffmpeg's 0:a:N)
    codec: str
    channels: int
    sample_rate: int
    language: str | None


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    format_name: str
    duration_s: float
    video: VideoInfo | None
    audio: list[AudioInfo] = field(default_factory=list)


def _fraction(text: str | None) -> Fraction:
    try:
        value = Fraction(text or "0")
    except (ValueError, ZeroDivisionError):
        return Fraction(0)
    return value


def _ratio(text: str, scale: int) -> int:
    return round(_fraction(text) * scale)


def master_display_of(side: dict[str, Any]) -> str:
    """x265's ``master-display`` from ffprobe's "Mastering display metadata" (ST 2086 units:
    chromaticity in 0.00002, luminance in 0.0001 cd/m2)."""
    def xy(c: str) -> str:
        return f"({_ratio(side[f'{c}_x'], 50000)},{_ratio(side[f'{c}_y'], 50000)})"

    lum = f"L({_ratio(side['max_luminance'], 10000)},{_ratio(side['min_luminance'], 10000)})"
    return f"G{xy('green')}B{xy('blue')}R{xy('red')}WP{xy('white_point')}{lum}"


def _side_data(path: Path) -> tuple[str | None, str | None]:
    out = run([tools.ffprobe(), "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1",
               "-show_frames", "-show_entries", "frame=side_data_list", "-of", "json", str(path)],
              f"reading HDR side data of {path.name}")
    frames = json.loads(out.stdout or "{}").get("frames") or [{}]
    display = cll = None
    for side in frames[0].get("side_data_list", []):
        kind = side.get("side_data_type", "")
        if kind.startswith("Mastering display") and "red_x" in side:
            display = master_display_of(side)
        elif kind.startswith("Content light level"):
            cll = f"{side.get('max_content', 0)},{side.get('max_average', 0)}"
    return display, cll


def _sample_aspect(text: str | None) -> Fraction:
    """ffprobe writes SAR as "64:45"; "0:1" or nothing means unknown, taken as square."""
    value = _fraction((text or "").replace(":", "/"))
    return value if value > 0 else Fraction(1)


def _rotation(stream: dict[str, Any]) -> int:
    """The display matrix's rotation in degrees, 0..359."""
    for side in stream.get("side_data_list", []):
        if side.get("side_data_type") == "Display Matrix" and "rotation" in side:
            try:
                return round(float(side["rotation"])) % 360
            except (TypeError, ValueError):
                return 0
    return 0


def probe(path: Path) -> MediaInfo:
    """Streams of ``path``. Raises MediaCommandFailed when ffprobe cannot read it."""
    out = run([tools.ffprobe(), "-v", "error", "-count_packets", "-show_format", "-show_streams",
               "-of", "json", str(path)], f"probing {path.name}")
    doc = json.loads(out.stdout or "{}")
    streams = doc.get("streams", [])
    fmt = doc.get("format", {})
    video = None
    v = next((s for s in streams if s.get("codec_type") == "video"
              and not s.get("disposition", {}).get("attached_pic")), None)
    if v is not None:
        transfer = v.get("color_transfer")
        display, cll = _side_data(path) if transfer in HDR_TRANSFERS else (None, None)
        video = VideoInfo(
            codec=v.get("codec_name", "unknown"), width=int(v.get("width", 0)), height=int(v.get("height", 0)),
            frame_rate=_fraction(v.get("r_frame_rate")), frame_count=int(v.get("nb_read_packets") or 0),
            pix_fmt=v.get("pix_fmt", ""), color_transfer=transfer, color_primaries=v.get("color_primaries"),
            color_space=v.get("color_space"), master_display=display, max_cll=cll,
            sample_aspect=_sample_aspect(v.get("sample_aspect_ratio")), rotation=_rotation(v),
            avg_frame_rate=_fraction(v.get("avg_frame_rate")),
            indexed_frames=int(v["nb_frames"]) if str(v.get("nb_frames", "")).isdigit() else None)
    audio = [AudioInfo(index=i, codec=s.get("codec_name", "unknown"), channels=int(s.get("channels", 0)),
                       sample_rate=int(s.get("sample_rate", 0)), language=(s.get("tags") or {}).get("language"))
             for i, s in enumerate(x for x in streams if x.get("codec_type") == "audio")]
    return MediaInfo(path=path, format_name=fmt.get("format_name", ""),
                     duration_s=float(fmt.get("duration") or 0.0), video=video, audio=audio)


def video_start(path: Path) -> Fraction:
    """How long after the file's first timestamp (the earliest stream's) its first video frame
    comes: what a chunk's seek adds (``grid.seek_seconds``). Read once per file and process."""
    stat = path.stat()
    return _video_layout(path, stat.st_size, stat.st_mtime_ns)[0]


def interlaced(path: Path) -> bool:
    """Whether the video is stored as interlaced fields (the stream's field order is ``tt``,
    ``bb``, ``tb`` or ``bt``): broadcast and tape masters. Read with ``video_start``."""
    stat = path.stat()
    return _video_layout(path, stat.st_size, stat.st_mtime_ns)[1]


@functools.lru_cache(maxsize=64)
def _video_layout(path: Path, size: int, mtime_ns: int) -> tuple[Fraction, bool]:
    out = run([tools.ffprobe(), "-v", "error", "-select_streams", "v:0", "-show_entries",
               "stream=start_time,field_order:format=start_time", "-of", "json", str(path)],
              f"reading the start of {path.name}")
    doc = json.loads(out.stdout or "{}")
    streams = doc.get("streams") or [{}]
    first, video = _fraction(doc.get("format", {}).get("start_time")), _fraction(streams[0].get("start_time"))
    return max(Fraction(0), video - first), streams[0].get("field_order") in INTERLACED_ORDERS


KEYFRAME_LEAD_S = 10.0  # reaches back past the start of a GOP, for masters with GOPs up to this long


def decode_errors(path: Path, seconds: float = 2.0) -> list[str]:
    """Decode the first and the last ``seconds`` of every stream; the decoder's complaints, if any.

    A complaint is confirmed from a keyframe before it counts: a master without an index
    (MPEG-TS) is entered mid-GOP by the seek, or starts mid-GOP when it was cut from a
    broadcast, and its B-frames then miss their references ("co located POCs unavailable",
    "mmco: unref short failure") although every frame of the master decodes."""
    problems: list[str] = []
    for where, position in (("first", ["-ss", "0"]), ("last", ["-sseof", f"-{seconds}"])):
        argv = [tools.ffmpeg(), "-nostdin", "-hide_banner", "-v", "error", *position, "-i", str(path),
                "-t", str(seconds), "-map", "0:v?", "-map", "0:a?", "-f", "null", "-"]
        try:
            result = run(argv, f"decoding the {where} {seconds:g}s of {path.name}")
            errors = [line for line in result.stderr.splitlines() if line.strip()]
        except MediaCommandFailed as e:
            errors = [str(e)]
        if errors:
            errors = _errors_from_a_keyframe(path, where, seconds)
        if errors:
            problems.append(f"{where} {seconds:g}s: {errors[0]} ({len(errors)} errors)")
    return problems


def _errors_from_a_keyframe(path: Path, where: str, seconds: float) -> list[str]:
    """The decoder's complaints about ``where`` ("first" or "last") ``seconds`` and the GOP
    before them, decoded from the first keyframe: a stream copy drops the packets before it
    (ffmpeg's default without ``-copyinkf``) and pipes the rest to a decoder.

    An open GOP's leading B-frames refer to the GOP before the keyframe, so they cannot be
    decoded from it ("mmco: unref short failure") and are never shown: complaints logged
    before the first picture comes out are theirs. Decoding on one thread keeps that order."""
    span = seconds + KEYFRAME_LEAD_S
    before_input, after_input = ([], ["-t", f"{span:g}"]) if where == "first" else (["-sseof", f"-{span:g}"], [])
    with tempfile.TemporaryDirectory(prefix="reel-decode-") as folder:
        fifo = Path(folder) / "from-a-keyframe.nut"
        os.mkfifo(fifo)
        copy = [tools.ffmpeg(), "-nostdin", "-hide_banner", "-v", "error", *before_input, "-i", str(path),
                *after_input, "-map", "0:v?", "-map", "0:a?", "-c", "copy", "-f", "nut", "-y", str(fifo)]
        decode = [tools.ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "level+info", "-threads", "1",
                  "-f", "nut", "-i", str(fifo), "-vf", "select='eq(n,0)',showinfo", "-f", "null", "-"]
        try:
            _, (stderr,) = run_with_readers(copy, [decode], f"decoding the {where} {span:g}s of {path.name} "
                                                               "from a keyframe")
        except MediaCommandFailed as e:
            return [str(e)]
    lines = stderr.splitlines()
    first_picture = next((i for i, line in enumerate(lines) if "showinfo" in line and " n:" in line), -1)
    return [line for line in lines[first_picture + 1:] if "[error]" in line or "[fatal]" in line]


def mp4_sample_count(path: Path) -> int | None:
    """Samples of the first track, from its ``stsz`` box (ISO/IEC 14496-12 §8.7.3: version and
    flags, sample_size, sample_count), walking moov/trak/mdia/minf/stbl. Reads only the box
    headers, so counting a chunk's frames costs no process. None when the file is no such MP4."""
    path_to = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsz")
    with path.open("rb") as f:
        end, depth = path.stat().st_size, 0
        while depth < len(path_to):
            header = f.read(8)
            if len(header) < 8 or f.tell() > end:
                return None
            size, kind = int.from_bytes(header[:4], "big"), header[4:8]
            body = 8
            if size == 1:
                size, body = int.from_bytes(f.read(8), "big"), 16
            if size < body:
                return None
            if kind == path_to[depth]:
                end, depth = f.tell() - body + size, depth + 1
            else:
                f.seek(size - body, 1)
        payload = f.read(12)
    return int.from_bytes(payload[8:12], "big") if len(payload) == 12 else None


def count_frames(path: Path) -> int:
    """Video frames in ``path`` (packets demuxed, nothing decoded)."""
    if path.suffix == ".mp4":
        samples = mp4_sample_count(path)
        if samples is not None:
            return samples
    out = run([tools.ffprobe(), "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
               "stream=nb_read_packets", "-of", "csv=p=0", str(path)], f"counting the frames of {path.name}")
    text = out.stdout.strip().split(",")[0]
    return int(text) if text.isdigit() else 0
