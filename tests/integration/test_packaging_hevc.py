"""HEVC (the UHD HDR10 rungs' codec): ReelStream packages and encrypts it, ffmpeg 8.1
decrypts it to the clear samples, and Shaka Packager 3.8 encrypts it to the same bytes.

Test media, in the transcoder's layout (2 s chunks, closed GOPs, IDR first):
- ``hevc-180p-main10-hdr``: HEVC Main10 HDR10 (PQ, BT.2020, mastering display and
  content light level SEI), no B-frames, two slices per picture (so slice segment
  addresses are in the headers), WPP entry points (x265's default). Encoded by the
  ``x265`` command (Debian's multilib build): the static ffmpeg 8.1's libx265 is 8-bit
  only and silently falls back to Main. Where ``x265`` is missing, this rendition is
  encoded 8-bit by that ffmpeg with the same PQ signalling, and the Main10-only checks
  are skipped with the reason.
- ``hevc-144p-main-sdr``: HEVC Main 8-bit by ffmpeg's libx265 with B-frames and
  weighted bi-prediction (pred_weight_table in B slices) and B-pyramid reordering.

Interop with Shaka Packager: sample for sample over the whole track, the protected bytes,
per-sample IVs and subsample maps are equal (see test_packaging_shaka.py for why they can
be compared across different fragmentations); differences found are listed there.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reelstream.media import tools
from reelstream.media.encrypt.keys import InMemoryKeyProvider
from reelstream.media.package.cmaf import read_clear, read_protected
from reelstream.media.package.hls import DeviceProfile, UrlBuilder, multivariant_playlist
from reelstream.media.package.packager import package_title
from reelstream.stores.localdir import LocalDirObjectStore
from tests.integration.test_packaging_shaka import reelstream_encrypt, shaka_encrypt
from tests.support.media_fixtures import framemd5, join_track

HDR = "hevc-180p-main10-hdr"
SDR = "hevc-144p-main-sdr"
X265 = shutil.which("x265")
FPS, SECONDS, GOP = 24, 4, 48
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
PQ_VUI = "colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc"


def _run(args: list[str], **kw: object) -> None:
    done = subprocess.run(args, capture_output=True, check=False, **kw)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))}\n{done.stderr[-2000:]!r}")


def _segment(source: list[str], out_dir: Path) -> list[Path]:
    """2-second standalone MP4 chunks with timestamps from 0, as the transcoder stores them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _run([tools.ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *source,
          "-tag:v", "hvc1", "-video_track_timescale", "12288", "-f", "segment", "-segment_time", "2",
          "-reset_timestamps", "1", "-segment_format", "mp4", str(out_dir / "%06d.mp4")])
    return sorted(out_dir.glob("*.mp4"))


def encode_main10_hdr(out_dir: Path, width: int = 320, height: int = 180) -> list[Path]:
    lavfi = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={FPS}:duration={SECONDS}"]
    if X265 is None:
        return _segment([*lavfi, "-c:v", "libx265", "-preset", "ultrafast", "-b:v", "300k", "-x265-params",
                         (f"keyint={GOP}:min-keyint={GOP}:scenecut=0:open-gop=0:bframes=0:slices=2:hdr10=1:"
                         f"repeat-headers=0:{PQ_VUI}:master-display={MASTER_DISPLAY}:max-cll=1000,400:"
                         "log-level=error")], out_dir)
    raw, whole = out_dir.parent / f"{out_dir.name}.hevc", out_dir.parent / f"{out_dir.name}.mp4"
    y4m = subprocess.Popen([tools.ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", *lavfi,
                            "-pix_fmt", "yuv420p10le", "-strict", "-1", "-f", "yuv4mpegpipe", "-"],
                           stdout=subprocess.PIPE)
    # x265's flags: closed 2 s GOPs on the grid, HDR10 signalling in the VUI and SEI;
    # no B-frames because a raw stream carries no timestamps to reorder with.
    _run([X265, "--input", "-", "--y4m", "--output-depth", "10", "--profile", "main10", "--preset", "ultrafast",
          "--bitrate", "300", "--keyint", str(GOP), "--min-keyint", str(GOP), "--no-scenecut", "--no-open-gop",
          "--bframes", "0", "--slices", "2", "--hdr10", "--no-repeat-headers", "--colorprim", "bt2020",
          "--transfer", "smpte2084", "--colormatrix", "bt2020nc", "--master-display", MASTER_DISPLAY,
          "--max-cll", "1000,400", "--log-level", "error", "--no-progress", "-o", str(raw)], stdin=y4m.stdout)
    assert y4m.wait() == 0
    _run([tools.ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-framerate", str(FPS),
          "-f", "hevc", "-i", str(raw), "-c", "copy", "-tag:v", "hvc1", "-video_track_timescale", "12288",
          str(whole)])
    return _segment(["-i", str(whole), "-c", "copy"], out_dir)


def encode_main_sdr(out_dir: Path) -> list[Path]:
    return _segment(["-f", "lavfi", "-i", f"testsrc2=size=256x144:rate={FPS}:duration={SECONDS}",
                     "-c:v", "libx265", "-preset", "ultrafast", "-b:v", "200k", "-x265-params",
                     (f"keyint={GOP}:min-keyint={GOP}:scenecut=0:open-gop=0:bframes=3:b-pyramid=1:weightb=1:"
                     "log-level=error")], out_dir)


@pytest.fixture(scope="module")
def hevc(tmp_path_factory: pytest.TempPathFactory):
    media = tmp_path_factory.mktemp("hevc")
    chunks = {HDR: encode_main10_hdr(media / HDR), SDR: encode_main_sdr(media / SDR)}
    store = LocalDirObjectStore(tmp_path_factory.mktemp("objects"))
    for rendition, files in chunks.items():
        for i, path in enumerate(files):
            store.put(f"titles/t1/renditions/{rendition}/chunks/{i:06d}.mp4", path)
    provider = InMemoryKeyProvider(generate=True)
    packages = {scheme: package_title(store, "t1", [HDR, SDR], [], [], scheme, provider, package_id=scheme)
                for scheme in ("clear", "cenc", "cbcs")}
    return store, provider, packages, tmp_path_factory.mktemp("joined")


def _joined(store, package, track_id: str, out: Path) -> Path:
    t = next(t for t in package.tracks if t.track_id == track_id)
    return join_track(store, package.storage_prefix, t.init, [t.media_key(s.number) for s in t.segments],
                      out / f"{package.scheme}-{track_id}.mp4")


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
@pytest.mark.parametrize("track_id", [HDR, SDR])
def test_ffmpeg_decrypts_hevc_to_the_clear_samples(hevc, scheme: str, track_id: str) -> None:
    store, provider, packages, out = hevc
    track = next(t for t in packages[scheme].tracks if t.track_id == track_id)
    key = provider.keys_for("t1", [track.key_class], scheme=scheme)[track.key_class]
    assert track.key_id == key.kid
    protected = _joined(store, packages[scheme], track_id, out)
    clear = _joined(store, packages["clear"], track_id, out)
    clear_frames = framemd5(clear)
    assert len(clear_frames) == FPS * SECONDS
    assert framemd5(protected, key=key.key) == clear_frames  # every frame decodes, same pictures
    assert framemd5(protected, key=key.key, copy=True) == framemd5(clear, copy=True)  # same bytes
    assert framemd5(protected, key=bytes(16), copy=True, strict=False) != framemd5(clear, copy=True)
    # the slice headers really were found: protected bytes exist and NAL headers are clear
    _, samples = read_protected(protected.read_bytes(), "protected")
    assert all(s.subsamples and any(p for _, p in s.subsamples) for s in samples)


def test_hevc_codecs_string_and_video_range(hevc) -> None:
    _, _, packages, _ = hevc
    by_id = {t.track_id: t for t in packages["cbcs"].tracks}
    hdr, sdr = by_id[HDR], by_id[SDR]
    assert sdr.codecs.startswith("hvc1.1.6.L") and sdr.video_range == "SDR"  # Main: profile 1, compat 1|2
    assert hdr.video_range == "PQ"
    if X265 is None:
        pytest.skip("the x265 command is not installed (apt-get install x265): no Main10 encoder here")
    # 14496-15 E.3 from the hvcC: profile 2 (Main10), compatibility flags bit-reversed (flag 2
    # -> 0x4), Main tier level 2 (60 = 30 x 2.0, what x265 picks for 320x180@24), constraint
    # byte 0x90 (progressive_source_flag and frame_only_constraint_flag), trailing zeros cut.
    assert hdr.codecs == "hvc1.2.4.L60.90"
    profile = DeviceProfile("tv", frozenset({"hvc1", "mp4a"}), security="hardware", drm=("widevine",))
    playlist = multivariant_playlist(packages["cbcs"], profile, UrlBuilder())
    assert f'CODECS="{hdr.codecs}"' in playlist and "VIDEO-RANGE=PQ" in playlist


IVS = {"cenc-8": "0706050403020100", "cenc-16": "0f0e0d0c0b0a09080706050403020100",
       "cbcs-16": "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"}


@pytest.mark.parametrize("case", list(IVS))
@pytest.mark.parametrize("track_id", [HDR, SDR])
def test_hevc_samples_and_metadata_equal_shaka(hevc, tmp_path: Path, track_id: str, case: str) -> None:
    store, _, packages, out = hevc
    source = _joined(store, packages["clear"], track_id, out)
    scheme, iv = case.split("-")[0], IVS[case]
    theirs = shaka_encrypt(source, "video", scheme, iv, tmp_path / "shaka.mp4")
    ours = reelstream_encrypt(source, "video", scheme, iv)
    our_tenc, our_samples = read_protected(ours, "reelstream")
    their_tenc, their_samples = read_protected(theirs, "shaka")
    assert our_tenc == their_tenc
    assert len(our_samples) == len(their_samples) == FPS * SECONDS
    for i, (a, b) in enumerate(zip(our_samples, their_samples, strict=True)):
        assert (a.iv, a.subsamples) == (b.iv, b.subsamples), f"sample {i}: metadata differs"
        assert a.data == b.data, f"sample {i}: protected bytes differ"
    clear = read_clear(source.read_bytes(), "clear")
    assert our_samples[0].data != bytes(clear.fragments[0].mdat[:len(our_samples[0].data)])


def test_cenc_and_cbcs_packages_of_one_title_use_different_keys(hevc) -> None:
    """The per-scheme key rule (reelstream.keys.model.key_slot) as the packager applies it."""
    _, _, packages, _ = hevc
    cenc = {t.track_id: t.key_id for t in packages["cenc"].tracks}
    cbcs = {t.track_id: t.key_id for t in packages["cbcs"].tracks}
    assert cenc.keys() == cbcs.keys() and all(cenc[t] and cbcs[t] and cenc[t] != cbcs[t] for t in cenc)
