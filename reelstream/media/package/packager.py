"""Package a title: encoded renditions in the object store in, a published ``Package`` out.

    package_title(objects, title_id, renditions, audio, subtitles, scheme, key_provider)

Reads ``titles/{title}/renditions/{id}/chunks/*.mp4``, ``titles/{title}/audio/{id}.mp4``
and ``titles/{title}/subtitles/{id}.vtt``; writes ``packages/{title}/{package}/``:
``{track}/init.mp4`` and ``{track}/seg-00001.m4s``... per video and audio track,
``{track}/seg-00001.vtt``... per subtitle track, then ``package.json`` last.

Publishing is atomic the object-store way: the package prefix is a staging area until
``package.json`` (the commit record) is written, and readers only trust a prefix that
has one. Any failure deletes everything the run wrote under the prefix, so nothing
half-written stays behind. (Writing to a separate staging prefix and copying would read
and write every segment twice; the ObjectStore port has no rename.)

Inputs are checked before ffmpeg sees them (a truncated or corrupt chunk, an unknown
codec: ``CorruptMedia`` / ``UnsupportedCodec`` naming the object key and the box), keys
are fetched before the first write (``MissingKey``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import subprocess
import tempfile
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from reelstream.errors import ObjectNotFound, ObjectStoreError
from reelstream.media import tools
from reelstream.media.encrypt.cenc import CbcsEncryptor, CencEncryptor, SampleEncryptor
from reelstream.media.encrypt.keys import (
    ContentKey,
    KeyClass,
    KeyProvider,
    MissingKey,
    key_class_for,
    kid_bytes,
)
from reelstream.media.encrypt.pssh import all_pssh, pssh_base64
from reelstream.media.package import sizes, webvtt
from reelstream.media.package.boxes import ContainerBox, iter_headers, parse_boxes
from reelstream.media.package.cmaf import (
    AUDIO_ENTRIES,
    STSD,
    VIDEO_ENTRIES,
    ClearTrack,
    Protection,
    fragment_args,
    iter_segments,
    protect_init,
    read_clear,
)
from reelstream.media.package.errors import (
    CorruptMedia,
    MissingInput,
    PackagingError,
    UnsupportedCodec,
)
from reelstream.media.package.model import Package, PackagedTrack, Scheme, Segment
from reelstream.media.package.remux import remux
from reelstream.stores.ports import ObjectStore

log = logging.getLogger(__name__)

SEGMENT_S = 2.0


@dataclass(frozen=True)
class MediaInput:
    """An audio or subtitle track to package, with what players show about it."""

    track_id: str
    language: str
    roles: tuple[str, ...] = ("main",)
    accessibility: tuple[str, ...] = ()

    @classmethod
    def from_id(cls, track_id: str) -> MediaInput:
        """``audio-en``, ``audio-en-ad`` (audio description), ``text-fr``, ``text-en-sdh``,
        ``text-fr-forced``: language and flags from the id's parts."""
        parts = track_id.split("-")
        if len(parts) < 2:
            raise PackagingError(f"track id {track_id!r} names no language (e.g. 'audio-en')")
        kind, language, flags = parts[0], parts[1], set(parts[2:])
        if kind == "audio":
            if "ad" in flags:
                return cls(track_id, language, ("description",), ("audio-description",))
            return cls(track_id, language, ("main",))
        if "sdh" in flags:
            return cls(track_id, language, ("caption",), ("sdh",))
        if "forced" in flags:
            return cls(track_id, language, ("forced-subtitle",))
        return cls(track_id, language, ("subtitle",))


@dataclass
class _Source:
    """One video or audio track after the ffmpeg step."""

    track_id: str
    track: ClearTrack
    media: MediaInput | None  # None for video


def package_title(objects: ObjectStore, title_id: str, renditions: Sequence[str],
                  audio: Sequence[MediaInput | str], subtitles: Sequence[MediaInput | str],
                  scheme: Scheme, key_provider: KeyProvider, *, package_id: str | None = None,
                  segment_s: float = SEGMENT_S, iv_size: int = 16, workers: int = 2,
                  fragmenter: Literal["native", "ffmpeg"] = "native") -> Package:
    """Package and publish; returns the ``Package`` also written as ``package.json``.

    ``fragmenter``: "native" reads the chunks' sample tables in-project (``remux``),
    "ffmpeg" runs ffmpeg's concat demuxer and CMAF muxer; both make the same track
    (tested), the native one about 3x faster (measured: ffmpeg remuxes at ~30 MB/s).
    """
    package_id = package_id or uuid.uuid4().hex[:12]
    prefix = f"packages/{title_id}/{package_id}/"
    audio_in = [a if isinstance(a, MediaInput) else MediaInput.from_id(a) for a in audio]
    text_in = [s if isinstance(s, MediaInput) else MediaInput.from_id(s) for s in subtitles]
    if objects.exists(prefix + "package.json"):
        raise PackagingError(f"{prefix} is already published; package under a new package id")
    written: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="reel-package-") as tmp:
            jobs = [(r, None) for r in renditions] + [(a.track_id, a) for a in audio_in]
            with ThreadPoolExecutor(max(1, workers)) as pool:
                sources = list(pool.map(
                    lambda job: _prepare(objects, title_id, job[0], job[1], Path(tmp), segment_s,
                                         fragmenter),
                    jobs))
                keys = _keys(key_provider, title_id, sources, scheme) if scheme != "clear" else {}
                tracks = list(pool.map(
                    lambda s: _write_track(objects, prefix, s, scheme, keys, iv_size, written),
                    sources))
        duration = max((sum(seg.duration for seg in t.segments) / t.timescale
                        for t in tracks if t.kind == "video"), default=0.0)
        for media in text_in:
            tracks.append(_write_subtitles(objects, title_id, prefix, media, duration,
                                           segment_s, written))
        all_keys = sorted({k.kid: k for k in keys.values()}.values(), key=lambda k: k.kid)
        package = Package(
            title_id=title_id, package_id=package_id, scheme=scheme, storage_prefix=prefix,
            duration_s=round(duration, 3), tracks=tuple(tracks),
            pssh={str(uuid.UUID(bytes=b.system_id)): pssh_base64(b)
                  for b in (all_pssh(all_keys, scheme) if all_keys else [])})
        _check_all_stored(objects, prefix, written)
        _put(objects, prefix + "package.json", package.to_json().encode(), "application/json", written)
        return package
    except BaseException:
        _remove_unpublished(objects, prefix, written)
        raise


def _check_all_stored(objects: ObjectStore, prefix: str, written: Sequence[str]) -> None:
    """Before publishing: every object this run wrote is there (one listing, not a HEAD each).
    A concurrent run of the same package id that failed may have removed some."""
    missing = set(written) - {info.key for info in objects.list(prefix)}
    if missing:
        raise PackagingError(f"{prefix}: {len(missing)} objects written by this run are gone "
                             f"(first: {min(missing)}); another run of this package id failed at "
                             "the same time: package again")


def _remove_unpublished(objects: ObjectStore, prefix: str, written: Sequence[str]) -> None:
    """Remove what a failed run wrote, unless a concurrent run of the same package id has
    published it: its objects are the same keys, with the same bytes (see ``derived_iv``)."""
    try:
        if objects.exists(prefix + "package.json"):
            return
        for key in written:
            objects.delete(key)
    except ObjectStoreError as e:  # the failure being raised matters more than the clean-up's
        log.warning("%s: could not remove the unpublished objects of a failed run: %s", prefix, e)


# --------------------------------------------------------------------------- inputs


def _prepare(objects: ObjectStore, title_id: str, track_id: str, media: MediaInput | None,
             tmp: Path, segment_s: float, fragmenter: str = "native") -> _Source:
    """Download and check the inputs of one track, fragment them (in-project or with
    ffmpeg), parse."""
    kind = "video" if media is None else "audio"
    if media is None:
        keys = [i.key for i in objects.list(f"titles/{title_id}/renditions/{track_id}/chunks/")
                if i.key.endswith(".mp4")]
        if not keys:
            raise MissingInput(f"rendition {track_id!r} of title {title_id!r} has no chunks "
                               f"under titles/{title_id}/renditions/{track_id}/chunks/")
    else:
        keys = [f"titles/{title_id}/audio/{track_id}.mp4"]
    configs: set[bytes] = set()
    chunks: list[tuple[str, bytes]] = []
    for key in sorted(keys):
        try:
            data = objects.get(key)
        except ObjectNotFound as e:
            raise MissingInput(f"{key} is missing: transcode the track before packaging") from e
        configs.add(check_source(data, key, kind))
        chunks.append((key, data))
    if fragmenter == "native":
        if len(configs) > 1:
            raise PackagingError(f"{track_id}: its chunks have different decoder configurations "
                                 "(avcC/hvcC/esds); package with fragmenter='ffmpeg' or re-encode")
        return _Source(track_id, remux(chunks, kind, segment_s), media)
    work = tmp / track_id
    work.mkdir()
    paths = []
    for n, (_, data) in enumerate(chunks):
        path = work / f"{n:06d}.mp4"
        path.write_bytes(data)
        paths.append(path)
    listing = work / "concat.txt"
    listing.write_text("".join(f"file '{p}'\n" for p in paths))
    output = work / "fragmented.mp4"
    args = fragment_args(tools.ffmpeg(), listing, output, kind, segment_s, len(configs) == 1)
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PackagingError(f"ffmpeg could not fragment {track_id} ({keys[0]}...): "
                             f"{done.stderr.strip()[-500:]}\ncommand: {' '.join(args)}")
    track = read_clear(output.read_bytes(), f"{track_id} (fragmented from {keys[0]}...)")
    return _Source(track_id, track, media)


def check_source(data: bytes, key: str, kind: str) -> bytes:
    """A chunk or audio file must be a complete MP4 whose first track is H.264 or HEVC
    (video) or AAC (audio). Raises CorruptMedia / UnsupportedCodec naming ``key`` and the box.
    Returns the track's sample entry (its decoder configuration) as bytes."""
    moov = None
    has_mdat = False
    for box_type, start, _, end, _ in iter_headers(data, 0, len(data), key):
        if box_type == b"moov":
            parsed = parse_boxes(data, key, start, end)[0]
            assert isinstance(parsed, ContainerBox)
            moov = parsed
        has_mdat = has_mdat or box_type == b"mdat"
    if moov is None or not has_mdat:
        raise CorruptMedia(key, "moov" if moov is None else "mdat", 0, "missing: not a complete MP4")
    wanted = VIDEO_ENTRIES if kind == "video" else AUDIO_ENTRIES
    for trak in moov.all("trak"):
        stsd = trak.find("mdia/minf/stbl/stsd") if isinstance(trak, ContainerBox) else None
        if isinstance(stsd, ContainerBox) and stsd.children:
            entry = stsd.children[0].type
            if entry in wanted and entry not in (b"encv", b"enca"):
                sample_entry = stsd.children[0]
                assert isinstance(sample_entry, ContainerBox)
                # the decoder configuration only (btrt and the like differ chunk to chunk)
                return b"".join(c.build() for c in sample_entry.children
                                if c.type in (b"avcC", b"hvcC", b"esds"))
            hdlr = trak.find("mdia/hdlr") if isinstance(trak, ContainerBox) else None
            handler = hdlr.payload()[8:12] if hdlr is not None else b""
            if handler == (b"vide" if kind == "video" else b"soun"):
                raise UnsupportedCodec(key, f"{STSD}/{entry.decode('latin-1')}", entry.decode("latin-1"))
    raise CorruptMedia(key, STSD, 0, f"no {kind} track")


def _keys(provider: KeyProvider, title_id: str, sources: list[_Source], scheme: str) -> dict[str, ContentKey]:
    """The content key of each track (by track id) for ``scheme``, one provider call for
    all classes: a title's 'cenc' and 'cbcs' packages never share a key (``key_slot``)."""
    classes: dict[str, KeyClass] = {}
    for s in sources:
        w, h = s.track.dimensions if s.track.kind == "video" else (None, None)
        classes[s.track_id] = key_class_for(s.track.kind, w, h)
    got = provider.keys_for(title_id, sorted(set(classes.values())), scheme=scheme)
    out = {}
    for track_id, c in classes.items():
        if c not in got:
            raise MissingKey(title_id, c, track_id)
        out[track_id] = got[c]
    return out


# --------------------------------------------------------------------------- outputs


def _put(objects: ObjectStore, key: str, data: bytes, content_type: str, written: list[str]) -> None:
    written.append(key)  # before the write: a failed put may still leave a part behind
    objects.put(key, data, content_type=content_type)


def derived_iv(key: ContentKey, label: str, size: int) -> bytes:
    """The track's first IV, unique per (key, package, track) as a random one would be, but
    the same on every run: a package id packaged twice at once (a redelivered event during a
    consumer-group rebalance) writes the same bytes to the same keys, never a mix of two
    runs' IVs that would not decrypt."""
    return hmac.new(key.key, f"reelstream-iv/{label}".encode(), hashlib.sha256).digest()[:size]


def encryptor_for(scheme: Scheme, key: ContentKey, kind: str, iv_size: int, label: str) -> SampleEncryptor:
    if scheme == "cenc":
        return CencEncryptor(key.key, derived_iv(key, label, iv_size))
    # 23001-7 10.4.1: 1:9 pattern for video, whole-block full sample encryption for audio
    return CbcsEncryptor(key.key, derived_iv(key, label, 16), (1, 9) if kind == "video" else (0, 0))


def _write_track(objects: ObjectStore, prefix: str, source: _Source, scheme: Scheme,
                 keys: dict[str, ContentKey], iv_size: int, written: list[str]) -> PackagedTrack:
    track, tid = source.track, source.track_id
    key = keys.get(tid)
    protection = None
    if scheme != "clear" and key is not None:
        protection = Protection(encryptor_for(scheme, key, track.kind, iv_size, prefix + tid), kid_bytes(key),
                                all_pssh([key], scheme))
    mime = "video/mp4" if track.kind == "video" else "audio/mp4"
    init = protect_init(track, protection) if protection else track.ftyp.build() + track.moov.build()
    _put(objects, f"{prefix}{tid}/init.mp4", init, mime, written)
    segments, durations = [], Counter[int]()
    for number, (data, table) in enumerate(iter_segments(track, protection), start=1):
        _put(objects, f"{prefix}{tid}/seg-{number:05d}.m4s", data, mime, written)
        segments.append(Segment(number, table.decode_time, sum(table.durations), len(data)))
        durations.update(table.durations)
    # Manifests carry no sizes: players planning by size read this sidecar (sizes.py).
    _put(objects, f"{prefix}{tid}/{sizes.NAME}", sizes.render(tid, segments), "application/json", written)
    ts = track.timescale
    total_s = sum(s.duration for s in segments) / ts
    peak = max((s.size * 8 * ts / s.duration for s in segments if s.duration), default=0)
    common: dict[str, Any] = {
        "track_id": tid, "kind": track.kind, "codecs": track.codecs, "bandwidth": int(peak),
        "average_bandwidth": int(sum(s.size for s in segments) * 8 / total_s) if total_s else 0,
        "timescale": ts, "init": f"{tid}/init.mp4", "media_template": tid + "/seg-{number:05d}.m4s",
        "segments": tuple(segments),
        "key_id": key.kid if protection and key else None,
        "key_class": key_class_for(track.kind, *(track.dimensions if track.kind == "video"
                                              else (None, None))) if protection else None}
    if track.kind == "video":
        w, h = track.dimensions
        rate = Fraction(ts, durations.most_common(1)[0][0]) if durations else Fraction(0)
        return PackagedTrack(**common, width=w, height=h, video_range=track.video_range,  # type: ignore[arg-type]
                             roles=("main",),
                             frame_rate=str(rate.numerator) if rate.denominator == 1 else
                             f"{rate.numerator}/{rate.denominator}")
    media = source.media
    assert media is not None
    return PackagedTrack(**common, language=media.language, roles=media.roles,
                         accessibility=media.accessibility)


def _write_subtitles(objects: ObjectStore, title_id: str, prefix: str, media: MediaInput,
                     duration_s: float, segment_s: float, written: list[str]) -> PackagedTrack:
    source = f"titles/{title_id}/subtitles/{media.track_id}.vtt"
    try:
        text = objects.get(source).decode("utf-8")
    except ObjectNotFound as e:
        raise MissingInput(f"{source} is missing") from e
    except UnicodeDecodeError as e:
        raise webvtt.BadSubtitles(f"{source}: not UTF-8 text: {e}") from e
    parts = webvtt.segments(text, source, int(duration_s * 1000), int(segment_s * 1000))
    segments = []
    for number, (start, dur, data) in enumerate(parts, start=1):
        _put(objects, f"{prefix}{media.track_id}/seg-{number:05d}.vtt", data, "text/vtt", written)
        segments.append(Segment(number, start, dur, len(data)))
    total = sum(s.size for s in segments)
    return PackagedTrack(
        track_id=media.track_id, kind="text", codecs="wvtt",
        bandwidth=int(max((s.size * 8000 / s.duration for s in segments if s.duration), default=0)),
        average_bandwidth=int(total * 8000 / max(1, sum(s.duration for s in segments))),
        timescale=1000, init="", media_template=media.track_id + "/seg-{number:05d}.vtt",
        segments=tuple(segments), language=media.language, roles=media.roles,
        accessibility=media.accessibility)
