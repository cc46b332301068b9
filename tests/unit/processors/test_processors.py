"""Processors are pure: events in, rows and events out, tested with no runtime."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reelstream.events.model import Event, new_event
from reelstream.processors.catalog.logic import TITLES, CatalogProcessor
from reelstream.processors.entitlements.logic import ENTITLEMENTS, EntitlementProcessor
from reelstream.processors.licenses.logic import LICENSES, LicenseProcessor
from reelstream.processors.playback.logic import WATCH_POSITIONS, WatchPositionProcessor
from reelstream.processors.transcode.progress import CHUNK_PROGRESS, ChunkProgressProcessor
from tests.support.memory_state import MemoryState

T0 = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)


def ev(event_type: str, at: datetime = T0, **data: object) -> Event:
    return new_event(event_type, data, producer="test", correlation_id="c", event_time=at)


def feed(processor: object, state: MemoryState, *events: Event) -> None:
    for e in events:
        state.apply(processor.handle(e, state))  # type: ignore[attr-defined]


def beat(device_type: str, position_ms: int, at: datetime, title: str = "t1") -> Event:
    return ev("PlaybackHeartbeat", at, session_id=f"s-{device_type}", user_id="u1", profile_id="p1",
              device_id=f"d-{device_type}", device_type=device_type, title_id=title, position_ms=position_ms,
              state="PLAYING", reason="INTERVAL", rendition_id=None, bitrate_kbps=None, buffer_ms=None,
              rebuffer_ms=0, startup_ms=None, throughput_kbps=None, cdn_node=None)


def test_watch_positions_order_by_event_time_not_arrival() -> None:
    state, proc = MemoryState(), WatchPositionProcessor()
    newer_tv = beat("tv", 600_000, T0 + timedelta(minutes=10))
    stale_tv = beat("tv", 60_000, T0 + timedelta(minutes=1))  # arrives late
    feed(proc, state, newer_tv, stale_tv)
    assert state.get(WATCH_POSITIONS, ("u1", "t1", "tv")).values["position_ms"] == 600_000


def test_watch_positions_keep_one_row_per_device_type() -> None:
    state, proc = MemoryState(), WatchPositionProcessor()
    feed(proc, state, beat("tv", 100_000, T0), beat("phone", 200_000, T0 + timedelta(seconds=30)))
    rows = state.query(WATCH_POSITIONS, ("u1",))
    assert [(r.values["device_type"], r.values["position_ms"]) for r in rows] == [("phone", 200_000), ("tv", 100_000)]


def test_pause_and_stop_record_state() -> None:
    state, proc = MemoryState(), WatchPositionProcessor()
    common = {"session_id": "s", "user_id": "u1", "profile_id": "p", "device_id": "d",
              "device_type": "tv", "title_id": "t1"}
    feed(proc, state, ev("PlaybackPaused", T0, position_ms=5_000, **common))
    assert state.get(WATCH_POSITIONS, ("u1", "t1", "tv")).values["state"] == "PAUSED"
    feed(proc, state, ev("PlaybackStopped", T0 + timedelta(seconds=1), position_ms=6_000, reason="EXIT", **common))
    assert state.get(WATCH_POSITIONS, ("u1", "t1", "tv")).values["state"] == "STOPPED"


def test_catalog_follows_a_title_through_its_life() -> None:
    state, proc = MemoryState(), CatalogProcessor()
    registered = ev("TitleRegistered", title_id="t1", title="Bunny", original_language="en", audio_languages=["en"],
                    rating={"system": "MPAA", "value": "G"}, genres=[],
                    license_terms={"territories": ["US"], "window_start": T0, "window_end": None,
                                   "offline_download_allowed": False, "max_height": 1080})
    rejected = ev("IngestRejected", title_id="t1", object_key="m", reasons=[
        {"code": "CHECKSUM_MISMATCH", "field": "master", "message": "sha256 differs"}])
    feed(proc, state, registered, rejected)
    row = state.get(TITLES, ("t1",)).values
    assert row["status"] == "REJECTED" and row["rejections"][0]["code"] == "CHECKSUM_MISMATCH"
    assert row["metadata"]["license_terms"]["window_start"] == int(T0.timestamp() * 1000)
    feed(proc, state, ev("TitlePackaged", title_id="t1", package_id="p1", formats=["hls", "dash"], schemes=["cenc"],
                         storage_prefix="pkg/t1/p1/", rendition_ids=["r1"]),
         ev("TitlePublished", title_id="t1", package_id="p1"))
    row = state.get(TITLES, ("t1",)).values
    assert row["status"] == "PUBLISHED" and row["title"] == "Bunny"


def test_a_revocation_replayed_before_its_grant_still_wins() -> None:
    state, proc = MemoryState(), EntitlementProcessor()
    grant = ev("EntitlementGranted", entitlement_id="e1", user_id="u1", kind="SUBSCRIPTION", title_id=None,
               plan="premium", starts_at=T0, ends_at=None)
    revoke = ev("EntitlementRevoked", entitlement_id="e1", user_id="u1", reason="refund")
    feed(proc, state, revoke, grant)
    row = state.get(ENTITLEMENTS, ("u1", "e1")).values
    assert row["revoked"] is True and row["plan"] == "premium"


def test_licenses_record_grants_and_returned_downloads() -> None:
    state, proc = MemoryState(), LicenseProcessor()
    denied = ev("LicenseDenied", user_id="u1", device_id="d", title_id="t1", key_ids=[], reason="TERRITORY", detail="x")
    assert proc.primary(denied) is None
    feed(proc, state, ev("DownloadLicensed", license_id="l1", user_id="u1", device_id="d", title_id="t1",
                         expires_at=T0 + timedelta(days=30), playback_window_ms=172_800_000, renewal=False),
         ev("DownloadReturned", license_id="l1", user_id="u1", device_id="d", title_id="t1"))
    row = state.get(LICENSES, ("u1", "l1")).values
    assert row["kind"] == "download" and row["returned"] is True


def test_a_downloads_persistent_license_keeps_it_a_download() -> None:
    state, proc = MemoryState(), LicenseProcessor()
    feed(proc, state, ev("DownloadLicensed", license_id="l1", user_id="u1", device_id="d", title_id="t1",
                         expires_at=T0 + timedelta(days=30), playback_window_ms=172_800_000, renewal=False),
         ev("LicenseGranted", license_id="l1", user_id="u1", device_id="d", title_id="t1", key_ids=["k"],
            session_type="persistent-license", expires_at=T0 + timedelta(days=30), playback_session_id=None,
            withheld_keys=[]),
         ev("LicenseGranted", license_id="lic-s1", user_id="u1", device_id="d", title_id="t1", key_ids=["k"],
            session_type="temporary", expires_at=T0 + timedelta(hours=4), playback_session_id="s1",
            withheld_keys=[]))
    assert state.get(LICENSES, ("u1", "l1")).values["kind"] == "download"
    assert state.get(LICENSES, ("u1", "l1")).values["key_ids"] == ["k"]
    assert state.get(LICENSES, ("u1", "lic-s1")).values["kind"] == "streaming"


def test_chunk_progress_writes_a_row_per_rung_and_marks_the_job() -> None:
    state, proc = MemoryState(), ChunkProgressProcessor()
    out = {"object_key": "k", "size_bytes": 10, "duration_ms": 2000, "frames": 48, "bitrate_kbps": 400,
           "psnr_db": 40.0, "ssim": None}
    done = ev("ChunkTranscoded", job_id="t1:h264:3", title_id="t1", encoder_group="h264", chunk_index=3,
              worker_id="w1", encode_ms=900, used_gpu=False,
              outputs=[{**out, "rendition_id": "240p"}, {**out, "rendition_id": "480p"}])
    feed(proc, state, done)
    assert state.get(CHUNK_PROGRESS, ("t1", "240p", 3)).values["status"] == "DONE"
    assert proc.primary(done) == (CHUNK_PROGRESS, ("t1", "group:h264", 3))
    assert state.get(CHUNK_PROGRESS, ("t1", "group:h264", 3)) is not None


def test_chunk_progress_of_a_title_ingested_again_follows_the_new_ingest() -> None:
    state, proc = MemoryState(), ChunkProgressProcessor()
    out = {"rendition_id": "240p", "object_key": "k", "size_bytes": 10, "duration_ms": 2000, "frames": 48,
           "bitrate_kbps": 400, "psnr_db": 40.0, "ssim": None}
    job = {"job_id": "t1:h264:3", "title_id": "t1", "encoder_group": "h264", "chunk_index": 3, "worker_id": "w1"}

    def failed(ingest: str) -> Event:
        return new_event("ChunkFailed", {**job, "attempt": 3, "reason": "NoSuchBucket", "final": True},
                         producer="test", correlation_id=ingest)

    done = new_event("ChunkTranscoded", {**job, "encode_ms": 900, "used_gpu": False, "outputs": [out]},
                     producer="test", correlation_id="second")
    # The first ingest failed the chunk; the second did it; then a straggling failure of the first.
    feed(proc, state, failed("first"), done, failed("first"))
    marker = state.get(CHUNK_PROGRESS, ("t1", "group:h264", 3)).values  # type: ignore[union-attr]
    assert (marker["status"], marker["reason"]) == ("DONE", None)
    assert marker["correlation_id"] == "second"
    assert state.get(CHUNK_PROGRESS, ("t1", "240p", 3)).values["correlation_id"] == "second"  # type: ignore[union-attr]
