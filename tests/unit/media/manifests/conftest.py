"""A hand-built Package shaped like the packager's output: SD and HD H.264, an HEVC rung,
three audio tracks (English, French, English audio description) and two subtitle tracks
(English SDH, French forced), with key ids per class and pssh boxes per DRM system."""

from __future__ import annotations

import base64
import struct

import pytest

from reelstream.media.package.hls import COMMON, PLAYREADY, WIDEVINE
from reelstream.media.package.model import Package, PackagedTrack, Segment

KIDS = {"SD": "11111111111111111111111111111111", "HD": "22222222222222222222222222222222",
        "AUDIO": "33333333333333333333333333333333"}


def pssh_box(system_id: str, kids: list[str], data: bytes, version: int = 1) -> str:
    payload = bytes([version, 0, 0, 0]) + bytes.fromhex(system_id.replace("-", ""))
    if version:
        payload += struct.pack(">I", len(kids)) + b"".join(bytes.fromhex(k) for k in kids)
    payload += struct.pack(">I", len(data)) + data
    return base64.b64encode(struct.pack(">I", 8 + len(payload)) + b"pssh" + payload).decode()


def segments(timescale: int, *seconds: float) -> tuple[Segment, ...]:
    out, start = [], 0
    for n, s in enumerate(seconds, 1):
        d = round(s * timescale)
        out.append(Segment(n, start, d, 1000 * n))
        start += d
    return tuple(out)


def video(track_id: str, codecs: str, w: int, h: int, peak: int, avg: int, key_class: str) -> PackagedTrack:
    return PackagedTrack(track_id, "video", codecs, peak, avg, 12288, f"{track_id}/init.mp4",
                         f"{track_id}/seg-{{number:05d}}.m4s", segments(12288, 2, 2, 1), width=w, height=h,
                         frame_rate="24", video_range="SDR", key_id=KIDS["SD" if key_class == "SD" else "HD"],
                         key_class=key_class)  # type: ignore[arg-type]


def audio(track_id: str, language: str, roles: tuple[str, ...], accessibility: tuple[str, ...] = ()) -> PackagedTrack:
    return PackagedTrack(track_id, "audio", "mp4a.40.2", 131072, 128000, 48000, f"{track_id}/init.mp4",
                         f"{track_id}/seg-{{number:05d}}.m4s", segments(48000, 2, 2, 1), language=language,
                         roles=roles, accessibility=accessibility, key_id=KIDS["AUDIO"], key_class="AUDIO")


def text(track_id: str, language: str, roles: tuple[str, ...], accessibility: tuple[str, ...] = ()) -> PackagedTrack:
    return PackagedTrack(track_id, "text", "wvtt", 800, 400, 1000, "", f"{track_id}/seg-{{number:05d}}.vtt",
                         segments(1000, 2, 2, 1), language=language, roles=roles, accessibility=accessibility)


def make_package(scheme: str) -> Package:
    all_kids = sorted(KIDS.values())
    return Package(
        title_id="t-golden", package_id="p1", scheme=scheme,  # type: ignore[arg-type]
        storage_prefix="packages/t-golden/p1/", duration_s=5.0,
        tracks=(video("h264-360p-800k", "avc1.64001e", 640, 360, 880000, 800000, "SD"),
                video("h264-720p-3000k", "avc1.64001f", 1280, 720, 3300000, 3000000, "HD"),
                video("hevc-1080p-4000k", "hvc1.2.4.L120.B0", 1920, 1080, 4400000, 4000000, "HD"),
                audio("audio-en", "en", ("main",)),
                audio("audio-fr", "fr", ("main",)),
                audio("audio-en-ad", "en", ("alternate", "description"), ("audio-description",)),
                text("text-en-sdh", "en", ("caption",), ("sdh",)),
                text("text-fr-forced", "fr", ("forced-subtitle",))),
        pssh={COMMON: pssh_box(COMMON, all_kids, b""),
              WIDEVINE: pssh_box(WIDEVINE, all_kids, b"\x12\x10" + bytes.fromhex(KIDS["SD"]), version=0),
              PLAYREADY: pssh_box(PLAYREADY, [], "<WRMHEADER/>".encode("utf-16-le"), version=0)})


@pytest.fixture
def cenc_package() -> Package:
    return make_package("cenc")


@pytest.fixture
def cbcs_package() -> Package:
    return make_package("cbcs")
