"""Tiny test titles in the transcoder's object layout, made with ffmpeg 8.1.

    titles/{title}/renditions/{rendition}/chunks/{index:06d}.mp4   H.264, 2 s, IDR first
    titles/{title}/audio/{track}.mp4                              AAC-LC stereo
    titles/{title}/subtitles/{track}.vtt                          WebVTT

Media are encoded once per test session into a cache folder (``build_media``) and
uploaded into each test's store (``upload_title``), so tests stay fast on 2 cores.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from reelstream.media import tools
from reelstream.stores.ports import ObjectStore

KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
KID = bytes.fromhex("0123456789abcdef0123456789abcdef")


@dataclass(frozen=True)
class Rendition:
    rendition_id: str
    width: int
    height: int
    kbps: int


DEFAULT_RENDITIONS = (Rendition("h264-180p-300k", 320, 180, 300),
                      Rendition("h264-360p-800k", 640, 360, 800))
DEFAULT_AUDIO = ("audio-en", "audio-en-ad")
DEFAULT_SUBTITLES = ("text-fr", "text-en-sdh")


def run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}\n{done.stderr[-2000:]}")


def encode_rendition(out_dir: Path, r: Rendition, seconds: int, chunk_s: int = 2,
                     codec: str = "libx264") -> list[Path]:
    """2-second standalone MP4 chunks, closed GOPs, timestamps from 0 in each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fps = 24
    args = [tools.ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={r.width}x{r.height}:rate={fps}:duration={seconds}",
            "-c:v", codec, "-b:v", f"{r.kbps}k", "-pix_fmt", "yuv420p",
            "-g", str(fps * chunk_s), "-keyint_min", str(fps * chunk_s)]
    if codec == "libx264":
        args += ["-preset", "veryfast", "-sc_threshold", "0"]
    args += ["-f", "segment", "-segment_time", str(chunk_s), "-reset_timestamps", "1",
             "-segment_format", "mp4", str(out_dir / "%06d.mp4")]
    run(args)
    return sorted(out_dir.glob("*.mp4"))


def encode_audio(path: Path, seconds: int, frequency: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    run([tools.ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=48000:duration={seconds}",
         "-ac", "2", "-c:a", "aac", "-b:a", "96k", str(path)])
    return path


def vtt(language: str, seconds: int) -> str:
    cues = [f"{i + 1}\n00:00:{i:02d}.500 --> 00:00:{i + 1:02d}.250\n[{language}] line {i + 1}\n"
            for i in range(seconds - 1)]
    return "WEBVTT\n\n" + "\n".join(cues)


def build_media(cache: Path, seconds: int = 4,
                renditions: tuple[Rendition, ...] = DEFAULT_RENDITIONS) -> Path:
    """Encode the default title once into ``cache`` (returns it)."""
    for r in renditions:
        encode_rendition(cache / "renditions" / r.rendition_id, r, seconds)
    for i, track in enumerate(DEFAULT_AUDIO):
        encode_audio(cache / "audio" / f"{track}.mp4", seconds, 440 + 220 * i)
    (cache / "subtitles").mkdir(parents=True, exist_ok=True)
    for track in DEFAULT_SUBTITLES:
        (cache / "subtitles" / f"{track}.vtt").write_text(vtt(track.split("-")[1], seconds))
    return cache


def upload_title(objects: ObjectStore, title_id: str, cache: Path) -> None:
    """Put the cached media into ``objects`` in the transcoder's layout."""
    for path in sorted(cache.rglob("*")):
        if path.is_file():
            rel = path.relative_to(cache)
            if rel.parts[0] == "renditions":
                key = f"titles/{title_id}/renditions/{rel.parts[1]}/chunks/{rel.parts[2]}"
            else:
                key = f"titles/{title_id}/{rel.as_posix()}"
            objects.put(key, path)


def framemd5(path: Path, key: bytes | None = None, copy: bool = False,
             strict: bool = True) -> list[str]:
    """ffmpeg's framemd5 lines (decoded frames, or packets with ``copy``), decrypting
    with ``key``; raises if ffmpeg reports any error (unless not ``strict``)."""
    args = [tools.ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-xerror"]
    if key is not None:
        args += ["-decryption_key", key.hex()]
    args += ["-i", str(path)] + (["-c", "copy"] if copy else []) + ["-f", "framemd5", "-"]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if strict and (done.returncode != 0 or done.stderr.strip()):
        raise AssertionError(f"ffmpeg failed on {path}: {done.stderr[-1000:]}")
    return [line for line in done.stdout.splitlines() if not line.startswith("#")]


def join_track(objects: ObjectStore, prefix: str, init: str, media: list[str], out: Path) -> Path:
    """Concatenate an init segment and media segments into one file ffmpeg can read."""
    with out.open("wb") as f:
        f.write(objects.get(prefix + init))
        for key in media:
            f.write(objects.get(prefix + key))
    return out
