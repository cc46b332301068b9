"""Shared by the gateway tests (unit, functional, integration): settings, a stepped clock,
a published title with a synthetic package, and a synchronous processor drain."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reelstream.events.model import new_event
from reelstream.gateways.settings import GatewaySettings
from reelstream.keys.kek import AesGcmKek
from reelstream.keys.service import KeyService
from reelstream.media.package.model import Package, PackagedTrack, Segment
from reelstream.processors.registry import all_processors
from reelstream.processors.runner import ProcessorRunner
from reelstream.runtime import Runtime

SIGNING_KEYS = "k2:" + base64.b64encode(b"2" * 32).decode() + ",k1:" + base64.b64encode(b"1" * 32).decode()
EDGE_SECRET = "edge-secret-for-tests"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def settings(**overrides: Any) -> GatewaySettings:
    # Clear Key trusted as a hardware CDM: the tests exercise the HD and UHD key policy without a
    # vendor DRM (test_clearkey_security.py checks the production default, software).
    values: dict[str, Any] = {"signing_keys": SIGNING_KEYS, "edge_secret": EDGE_SECRET,
                              "edge_base_url": "http://edge.test", "default_country": "",
                              "clearkey_security": "hardware"}
    return GatewaySettings(**{**values, **overrides})


@dataclass
class Clock:
    """Wall-clock seconds that tests step; starts at the real time so Kafka timestamps agree."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def key_service(runtime: Runtime) -> KeyService:
    return KeyService(runtime.state, AesGcmKek(secrets.token_bytes(32)), runtime.publish, producer="test")


def _track(track_id: str, kind: str, codecs: str, height: int | None, key_id: str, key_class: str,
           duration_s: int) -> PackagedTrack:
    timescale = 90_000 if kind == "video" else 48_000
    segs = tuple(Segment(n + 1, n * 6 * timescale, 6 * timescale, 100_000) for n in range(duration_s // 6))
    return PackagedTrack(
        track_id=track_id, kind=kind, codecs=codecs, bandwidth=800_000, average_bandwidth=700_000,  # type: ignore[arg-type]
        timescale=timescale, init=f"{track_id}/init.mp4", media_template=f"{track_id}/seg-{{number:05d}}.m4s",
        segments=segs, width=(height * 16 // 9) if height else None, height=height,
        frame_rate="24" if height else None, video_range="SDR" if height else None,
        language="en" if kind == "audio" else None, roles=("main",), key_id=key_id, key_class=key_class)  # type: ignore[arg-type]


def publish_title(runtime: Runtime, keys: KeyService, title_id: str, *, territories: tuple[str, ...] = ("US",),
                  window_start: datetime = T0, window_end: datetime | None = None, offline: bool = True,
                  max_height: int = 2160, duration_s: int = 600, series: dict[str, Any] | None = None,
                  end_credits_start_ms: int | None = None, rating: tuple[str, str] = ("MPAA", "PG")) -> Package:
    """Register, package (a synthetic package.json, real keys from the key service) and publish."""
    kids = {c: k.kid for c, k in keys.keys_for(title_id, ["AUDIO", "SD", "HD", "UHD"]).items()}
    package_id = f"pkg-{title_id}"
    prefix = f"packages/{title_id}/{package_id}/"
    tracks = (_track("h264-360p", "video", "avc1.64001e", 360, kids["SD"], "SD", duration_s),
              _track("h264-1080p", "video", "avc1.640028", 1080, kids["HD"], "HD", duration_s),
              _track("h264-2160p", "video", "avc1.640033", 2160, kids["UHD"], "UHD", duration_s),
              _track("audio-en", "audio", "mp4a.40.2", None, kids["AUDIO"], "AUDIO", duration_s))
    package = Package(title_id, package_id, "cenc", prefix, float(duration_s), tracks)
    runtime.objects.put(prefix + "package.json", package.to_json().encode(), content_type="application/json")
    runtime.publish(new_event("TitleRegistered", {
        "title_id": title_id, "title": f"Title {title_id}", "original_language": "en", "audio_languages": ["en"],
        "rating": {"system": rating[0], "value": rating[1]}, "genres": ["drama"],
        "license_terms": {"territories": list(territories), "window_start": window_start, "window_end": window_end,
                          "offline_download_allowed": offline, "max_height": max_height},
        "series": series, "end_credits_start_ms": end_credits_start_ms},
        producer="test", correlation_id=title_id), flush=False)
    runtime.publish(new_event("TitlePackaged", {
        "title_id": title_id, "package_id": package_id, "formats": ["dash", "hls"], "schemes": ["cenc"],
        "storage_prefix": prefix, "rendition_ids": ["h264-360p", "h264-1080p", "h264-2160p"]},
        producer="test", correlation_id=title_id), flush=False)
    runtime.publish(new_event("TitlePublished", {"title_id": title_id, "package_id": package_id},
                          producer="test", correlation_id=title_id))
    return package


def grant(runtime: Runtime, user: str, entitlement_id: str, *, kind: str = "SUBSCRIPTION",
          title_id: str | None = None, starts: datetime = T0, ends: datetime | None = None) -> None:
    runtime.publish(new_event("EntitlementGranted", {
        "entitlement_id": entitlement_id, "user_id": user, "kind": kind, "title_id": title_id, "plan": "standard",
        "starts_at": starts, "ends_at": ends}, producer="test"))


def revoke(runtime: Runtime, user: str, entitlement_id: str) -> None:
    runtime.publish(new_event("EntitlementRevoked", {"entitlement_id": entitlement_id, "user_id": user,
                                                     "reason": "cancelled"}, producer="test"))


def drain(runtime: Runtime, group_prefix: str = "drain") -> int:
    """Run every processor over the log until it is caught up (synchronously); returns records applied."""
    total = 0
    for processor in all_processors():
        runtime.state.ensure_views(processor.views)
        runner = ProcessorRunner(processor, runtime.log, runtime.state, runtime.codec, "test")
        consumer = runtime.log.consumer(list(processor.topics), f"{group_prefix}.{processor.name}")
        try:
            while records := consumer.poll(1000, 0.2):
                runner.process(records)
                consumer.commit(records)
                total += len(records)
        finally:
            consumer.close()
    return total


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


# --------------------------------------------------------------------------- real servers


def server_settings(kafka_bootstrap: str, cassandra: tuple[list[str], int], unique: str, data_dir: Any) -> Any:
    from reelstream.config import Settings

    hosts, port = cassandra
    return Settings(data_dir=data_dir, log_url=f"kafka://{kafka_bootstrap}", group_prefix=f"gw-{unique}",
                    state_url=f"cassandra://{','.join(hosts)}:{port}/reel_gw_{unique}")


def start_groups_at_end(bootstrap: str, prefix: str) -> None:
    """Commit the log's end for every processor's group (``prefix``), so processors started
    afterwards fold this run's events only, not every earlier run's records retained in the
    shared topics (hundreds of thousands in reel.playback and reel.licenses after a few
    benchmarks). Call it before publishing anything the processors must see."""
    from confluent_kafka import Consumer, TopicPartition

    from reelstream.processors.embedded import group_id
    from reelstream.processors.registry import all_processors
    from reelstream.stores.kafka import KafkaLog

    log = KafkaLog(bootstrap)
    for processor in all_processors():
        offsets = [TopicPartition(t, p, o) for t in processor.topics for p, o in log.end_offsets(t).items()]
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id(processor, prefix),
                             "enable.auto.commit": False})
        consumer.commit(offsets=offsets, asynchronous=False)
        consumer.close()
    log.close()


def drop_keyspace(state_url: str) -> None:
    """Drop a test's or bench's Cassandra keyspace: every keyspace left behind costs the one
    shared node heap (memtables, schema), and enough of them exhaust it."""
    from urllib.parse import urlparse

    from cassandra.cluster import Cluster

    url = urlparse(state_url)
    if url.scheme != "cassandra":
        return
    cluster = Cluster(contact_points=(url.hostname or "127.0.0.1").split(","), port=url.port or 9042,
                      protocol_version=5, connect_timeout=5)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {url.path.strip('/')}", timeout=60)
    finally:
        cluster.shutdown()


def start_processors(settings_: Any, log_file: Any) -> Any:
    """``reel processors`` (embedded host) as a child process on the servers."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "REEL_LOG_URL": settings_.log_url, "REEL_STATE_URL": settings_.state_url,
           "REEL_GROUP_PREFIX": settings_.group_prefix, "REEL_DATA_DIR": str(settings_.data_dir)}
    return subprocess.Popen([sys.executable, "-m", "reelstream.cli", "processors"], env=env,
                            cwd=Path(__file__).resolve().parents[3], stdout=log_file.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(process: Any) -> None:
    import os
    import signal
    import subprocess

    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Reply:
    """A response that is truthy whatever its status (``requests.Response`` is falsy on 4xx)."""

    def __init__(self, response: Any) -> None:
        self.status_code = response.status_code
        self.text = response.text
        self.content = response.content
        self.headers = response.headers

    def json(self) -> Any:
        import json

        return json.loads(self.content)


class Api:
    """A tiny synchronous client of the gateways for integration tests and benchmarks."""

    def __init__(self, base: str, country: str = "US") -> None:
        import requests

        self.base = base
        self.http = requests.Session()
        self.country = country

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = {"X-Client-Country": kw.pop("country", self.country), **kw.pop("headers", {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return Reply(self.http.request(method, self.base + path, headers=headers, timeout=30, **kw))

    def account(self, email: str, devices: list[tuple[str, str]]) -> dict[str, Any]:
        """Sign up, sign in, register ``devices`` [(type, security)]; returns ids and device tokens."""
        r = self.call("POST", "/auth/accounts", json={"email": email, "password": "password1", "country": "US"})
        assert r.status_code == 201, r.text
        session = self.call("POST", "/auth/sessions", json={"email": email, "password": "password1"}).json()
        tokens = []
        for device_type, security in devices:
            r = self.call("POST", "/auth/devices", session["token"],
                          json={"name": device_type, "device_type": device_type, "security_level": security})
            assert r.status_code == 201, r.text
            tokens.append(r.json()["token"])
        return {"account_id": session["account_id"], "tokens": tokens}

    def ticket(self, token: str, title_id: str, **kw: Any) -> str:
        """A session's ticket. A session opens only for an entitled account, and on servers a
        grant reaches the gateway a moment after it is written: refusals for want of one are
        waited out (30 s)."""
        deadline = time.monotonic() + 30
        while True:
            r = self.call("GET", f"/manifests/titles/{title_id}/manifest.mpd", token, **kw)
            if r.status_code == 200:
                return str(r.headers["X-Reel-Ticket"])
            waiting = r.status_code == 403 and r.json().get("reason") == "NO_ENTITLEMENT"
            assert waiting and time.monotonic() < deadline, r.text
            time.sleep(0.2)

    def license(self, ticket: str, kids: list[str], session_type: str = "temporary", **kw: Any) -> Any:
        from reelstream.identity.tokens import b64url

        return self.call("POST", f"/licenses/clearkey?ticket={ticket}",
                         json={"kids": [b64url(bytes.fromhex(k)) for k in kids], "type": session_type}, **kw)

    def beat(self, token: str, session: str, title_id: str, position_ms: int, event: str = "heartbeat",
             **fields: Any) -> Any:
        return self.call("POST", "/playback/heartbeats", token, json={
            "sid": session, "cid": title_id, "event": event, "position_ms": position_ms, **fields})


def kid(package: Package, key_class: str) -> str:
    return next(str(t.key_id) for t in package.tracks if t.key_class == key_class)


@asynccontextmanager
async def embedded_gateways(root: Path, **overrides: Any) -> AsyncIterator[dict[str, Any]]:
    """Every gateway through the real app factory on the embedded runtime under ``root``,
    film-1 (600 s) published, a stepped clock: client, runtime, package, clock, keys."""
    from aiohttp.test_utils import TestClient, TestServer

    from reelstream.config import Settings
    from reelstream.gateways.app import create_app

    runtime = Runtime(Settings(data_dir=root / "reel"))
    keys = key_service(runtime)
    package = publish_title(runtime, keys, "film-1", duration_s=600)
    drain(runtime)
    clock = Clock(time.time())
    app = create_app(runtime, settings(**overrides), keys, clock=clock)
    try:
        async with TestClient(TestServer(app)) as client:
            yield {"client": client, "runtime": runtime, "package": package, "clock": clock, "keys": keys}
    finally:
        runtime.close()
