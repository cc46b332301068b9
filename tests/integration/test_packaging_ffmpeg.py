"""ReelStream's cenc and cbcs packages decrypt with ffmpeg 8.1 and equal the clear media.

For every video (H.264) and audio (AAC) track: ffmpeg, given the track's key, decodes
every frame without an error, the decoded frames' MD5s equal those of the clear
package, and so do the packets' (``-c copy``): the decrypted samples are the clear
samples byte for byte. The clear package's packets equal the source chunks'.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reelstream.media.encrypt.keys import InMemoryKeyProvider
from reelstream.media.package.boxes import Trun
from reelstream.media.package.cmaf import read_clear, sample_table
from reelstream.media.package.model import Package
from reelstream.media.package.packager import package_title
from reelstream.stores.localdir import LocalDirObjectStore
from tests.support.media_fixtures import (
    DEFAULT_AUDIO,
    DEFAULT_RENDITIONS,
    DEFAULT_SUBTITLES,
    build_media,
    framemd5,
    join_track,
    upload_title,
)

RENDITIONS = [r.rendition_id for r in DEFAULT_RENDITIONS]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory):
    media = build_media(tmp_path_factory.mktemp("media"))
    store = LocalDirObjectStore(tmp_path_factory.mktemp("objects"))
    upload_title(store, "t1", media)
    provider = InMemoryKeyProvider(generate=True)
    packages = {scheme: package_title(store, "t1", RENDITIONS, DEFAULT_AUDIO, DEFAULT_SUBTITLES,
                                      scheme, provider, package_id=scheme)
                for scheme in ("clear", "cenc", "cbcs")}
    return store, provider, packages, media, tmp_path_factory.mktemp("joined")


def _joined(store, package: Package, track_id: str, out_dir: Path) -> Path:
    t = next(t for t in package.tracks if t.track_id == track_id)
    return join_track(store, package.storage_prefix, t.init,
                      [t.media_key(s.number) for s in t.segments],
                      out_dir / f"{package.scheme}-{track_id}.mp4")


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
@pytest.mark.parametrize("track_id", RENDITIONS + list(DEFAULT_AUDIO))
def test_decrypts_to_the_clear_samples(packaged, scheme: str, track_id: str) -> None:
    store, provider, packages, _, out = packaged
    package = packages[scheme]
    track = next(t for t in package.tracks if t.track_id == track_id)
    key = provider.keys_for("t1", [track.key_class], scheme=scheme)[track.key_class]  # one key per scheme
    assert track.key_id == key.kid
    protected = _joined(store, package, track_id, out)
    clear = _joined(store, packages["clear"], track_id, out)
    clear_frames = framemd5(clear)
    assert len(clear_frames) == sum(1 for _ in framemd5(clear, copy=True)) > 0
    assert framemd5(protected, key=key.key) == clear_frames  # every frame decodes, same pictures
    assert framemd5(protected, key=key.key, copy=True) == framemd5(clear, copy=True)  # same bytes
    assert framemd5(protected, key=bytes(16), copy=True, strict=False) != framemd5(clear, copy=True)


def test_clear_package_carries_the_source_samples(packaged) -> None:
    """Packet by packet (size and MD5), the clear package is the transcoder's chunks."""
    store, _, packages, media, out = packaged
    chunks = sorted((media / "renditions" / RENDITIONS[0]).glob("*.mp4"))
    source = [line for c in chunks for line in framemd5(c, copy=True)]
    clear = framemd5(_joined(store, packages["clear"], RENDITIONS[0], out), copy=True)
    assert [line.split(",")[-2:] for line in clear] == [line.split(",")[-2:] for line in source]


def test_package_json_is_the_published_contract(packaged) -> None:
    store, provider, packages, _, _ = packaged
    package = packages["cenc"]
    stored = Package.from_json(store.get(package.storage_prefix + "package.json").decode())
    assert stored == package
    by_id = {t.track_id: t for t in package.tracks}
    assert by_id["h264-180p-300k"].codecs.startswith("avc1.") and by_id["h264-180p-300k"].frame_rate == "24"
    assert (by_id["h264-360p-800k"].width, by_id["h264-360p-800k"].height) == (640, 360)
    assert by_id["audio-en"].codecs == "mp4a.40.2" and by_id["audio-en"].language == "en"
    assert by_id["audio-en-ad"].accessibility == ("audio-description",)
    assert by_id["text-en-sdh"].accessibility == ("sdh",) and by_id["text-fr"].language == "fr"
    assert {t.key_class for t in package.tracks if t.kind != "text"} == {"SD", "AUDIO"}
    video = by_id["h264-180p-300k"]
    assert [s.start for s in video.segments] == [0, 2 * video.timescale]  # 2-second segments
    assert all(s.size == store.head(package.storage_prefix + video.media_key(s.number)).size
               for s in video.segments)
    assert set(package.pssh) == {"1077efec-c0b2-4d02-ace3-3c1e52e2fb4b",
                                 "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",
                                 "9a04f079-9840-4286-ab92-e65be0885f95"}
    # key ids only, never key bytes, in what is published
    raw = store.get(package.storage_prefix + "package.json")
    for key in provider.keys_for("t1", ["SD", "AUDIO"]).values():
        assert key.key.hex() not in raw.decode() and key.key not in raw
    vtt = store.get(package.storage_prefix + by_id["text-fr"].media_key(1)).decode()
    assert vtt.startswith("WEBVTT") and "-->" in vtt
    assert json.loads(raw)["scheme"] == "cenc"


def _timeline(data: bytes) -> list[tuple]:
    track = read_clear(data, "joined")
    out = []
    for frag in track.fragments:
        table = sample_table(frag, "joined")
        trun = frag.moof.find("traf/trun")
        assert isinstance(trun, Trun)
        out.append((table.decode_time, table.durations, [s.composition_offset or 0 for s in trun.samples],
                    [bytes(frag.mdat[o:o + s]) for o, s in zip(table.offsets, table.sizes, strict=True)]))
    return out


def test_native_fragmenter_makes_what_ffmpeg_makes(packaged) -> None:
    """Same fragments, decode times, durations, composition offsets and sample bytes."""
    store, _, packages, _, out = packaged
    ffmpeg_made = package_title(store, "t1", RENDITIONS, DEFAULT_AUDIO, [], "clear", None,  # type: ignore[arg-type]
                                package_id="clear-ffmpeg", fragmenter="ffmpeg")
    for track in ffmpeg_made.tracks:
        native = _joined(store, packages["clear"], track.track_id, out).read_bytes()
        reference = _joined(store, ffmpeg_made, track.track_id, out).read_bytes()
        assert _timeline(native) == _timeline(reference), track.track_id
