"""What every gateway shares: the runtime's ports, the clock, tokens, caches, the
publisher. Built once by ``app.create_app`` and stored under the ``SERVICES`` AppKey.

Identity comes only from verified tokens (``caller``/``ticket``): a session token
(audience ``session``) names the account, profile and device; a playback ticket
(audience ``playback``) additionally names the title and playback session, and travels
in manifest, license and playlist URLs where players cannot add headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

from aiohttp import web

from reelstream.errors import StateStoreError
from reelstream.gateways import policy
from reelstream.gateways.account_state import LicenseCache, LiveSessionCache
from reelstream.gateways.catalog import TitleCatalog
from reelstream.gateways.drm import DrmAdapter
from reelstream.gateways.entitlements import EntitlementCache
from reelstream.gateways.errors import BadRequest, Refused, Unauthorized
from reelstream.gateways.passwords import PasswordWork
from reelstream.gateways.publisher import Publisher
from reelstream.gateways.settings import GatewaySettings
from reelstream.gateways.signing import EdgeSigner
from reelstream.gateways.throttle import SignInThrottle
from reelstream.identity.accounts import AGE_BANDS, Device, IdentityStore, UnknownDevice
from reelstream.identity.tokens import KeyRing, TokenSigner
from reelstream.jsontext import LONE_SURROGATE_HINT, NESTED_TOO_DEEPLY, lone_surrogate_at
from reelstream.keys.service import KeyService
from reelstream.runtime import Runtime

SESSION, PLAYBACK = "session", "playback"
LIVE_SESSIONS_MAX_AGE_S = 3600.0
log = logging.getLogger(__name__)
# How long another instance may still serve a device removed elsewhere (the instance that
# removes it stops at once). Ten minutes: a removed device keeps the licenses it already holds
# for up to 6 hours anyway, and a re-read costs the license server's core about 1 ms of CPU
# (a minute made 3,000 devices' refreshes a load spike: bench/license.py, p50 0.3-0.8 s).
DEVICE_CACHE_S = 600.0
# Past its (jittered) ten minutes a cached device is still served while a background read
# refreshes it: devices warmed together would otherwise expire together, and every license
# request would wait on a read at once.
DEVICE_REFRESH_GRACE_S = 600.0
DEVICE_CACHE_JITTER = 0.2
DEVICE_REFRESH_PAUSE_S = 0.003  # between background re-reads: at most ~300/s, never a burst


@dataclass(frozen=True)
class Caller:
    """Who is calling, from a verified session token."""

    account_id: str
    profile_id: str
    device_id: str | None

    def require_device(self) -> str:
        if self.device_id is None:
            raise Unauthorized("this call needs a device-bound token: register the device "
                               "(POST /auth/devices) or sign in with device_id")
        return self.device_id


@dataclass(frozen=True)
class Ticket:
    """A playback ticket: one title on one device in one playback session (or download)."""

    account_id: str
    profile_id: str
    device_id: str
    device_type: str
    security_level: str
    title_id: str
    session_id: str
    kind: str  # "stream" or "download"
    license_id: str | None
    expires_s: int

    def claims(self) -> dict[str, Any]:
        return {"sub": self.account_id, "prf": self.profile_id, "dev": self.device_id, "dty": self.device_type,
                "sec": self.security_level, "ttl": self.title_id, "sid": self.session_id, "knd": self.kind,
                "lic": self.license_id}


@dataclass
class Services:
    runtime: Runtime
    settings: GatewaySettings
    keys: KeyService | None
    clock: Callable[[], float] = time.time  # wall seconds; tests pass a stepped clock
    next_episode: Callable[[str], str | None] | None = None  # None: the catalog's series data
    adapters: Mapping[str, DrmAdapter] = field(default_factory=dict)  # empty: the settings' adapters

    def __post_init__(self) -> None:
        self.signer = TokenSigner(KeyRing.from_setting(self.settings.signing_keys), self.clock)
        self.identity = IdentityStore(self.runtime.state, self.now_ms, self.settings.max_devices)
        self.passwords = PasswordWork(self.settings.max_pending_sign_ins)
        self.sign_ins = SignInThrottle()
        self._proxy_networks = self.settings.proxy_networks()
        if not self._proxy_networks:
            log.warning("REEL_TRUSTED_PROXIES is not set: the %s and %s headers are believed from any client, so "
                        "territory checks are only as good as its word (set it to the load balancers' addresses)",
                        self.settings.country_header, self.settings.isp_header)
        self.entitlements = EntitlementCache(self.runtime.state)
        self.licenses = LicenseCache(self.runtime.state, self.now_ms)
        refresh = self.settings.live_sessions_refresh_s
        # Kept current by folding reel.sessions, so held for long; max_age bounds how long a
        # follower outage could go unnoticed in the counts.
        self.live_sessions = LiveSessionCache(self.runtime.state, fresh_s=refresh,
                                              max_age_s=max(LIVE_SESSIONS_MAX_AGE_S, 2.0 * refresh), now_ms=self.now_ms)
        self.catalog = TitleCatalog(self.runtime.state, self.runtime.objects, self.keys)
        if not self.adapters:
            self.adapters = self.settings.drm_adapters()
        if self.next_episode is None:
            self.next_episode = self.catalog.next_episode
        self.publisher = Publisher(self.runtime.log, self.runtime.codec)
        self.edge = EdgeSigner(self.settings.edge_base_url.rstrip("/"), self.settings.edge_secret,
                               self.settings.ticket_ttl_s)
        self.producer = f"gateway@{self.runtime.settings.producer}"
        self._devices: dict[tuple[str, str], tuple[float, Device]] = {}  # key -> (fresh until, device)
        self._refreshing: set[tuple[str, str]] = set()
        # One thread: devices gone stale together are re-read one after another, so the
        # refreshes never take more than one thread's share of the event loop's core.
        self._refresher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="device-refresh")

    def device(self, account_id: str, device_id: str) -> Device:
        """The registered device, cached for about ten minutes (a removed device stops within
        it, plus one refresh); UnknownDevice if it is not registered to the account or was
        removed. May read the state store: in a worker thread on the license server's path
        (see ``peek_device``)."""
        hit = self.peek_device(account_id, device_id)
        if hit is not None:
            return hit
        return self._read_device((account_id, device_id))

    def _read_device(self, key: tuple[str, str]) -> Device:
        try:
            device = self.identity.device(*key)
        except UnknownDevice:
            self._devices.pop(key, None)
            raise
        fresh_for = DEVICE_CACHE_S * random.uniform(1 - DEVICE_CACHE_JITTER, 1 + DEVICE_CACHE_JITTER)
        self._devices[key] = (time.monotonic() + fresh_for, device)
        return device

    def peek_device(self, account_id: str, device_id: str) -> Device | None:
        """The cached device, without I/O (safe on the event loop): while fresh; and for
        ``DEVICE_REFRESH_GRACE_S`` more, while one background read refreshes it. None when
        nothing usable is cached."""
        key = (account_id, device_id)
        hit = self._devices.get(key)
        if hit is None:
            return None
        fresh_until, device = hit
        now = time.monotonic()
        if now < fresh_until:
            return device
        if now >= fresh_until + DEVICE_REFRESH_GRACE_S:
            return None
        self._refresh_in_background(key)
        return device

    def _refresh_in_background(self, key: tuple[str, str]) -> None:
        if key in self._refreshing:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (a script): the next ``device`` call reads once the grace ends
        self._refreshing.add(key)

        def refresh() -> None:
            try:
                time.sleep(DEVICE_REFRESH_PAUSE_S)
                self._read_device(key)
            except UnknownDevice:
                pass  # dropped from the cache: its next request reads and is refused
            except StateStoreError as e:
                log.warning("device %s/%s: refresh failed, the cached record stays (%s)", *key, e)
            finally:
                self._refreshing.discard(key)

        loop.run_in_executor(self._refresher, refresh)

    def close(self) -> None:
        """Drop the device refreshes and password checks still queued (the app is stopping)."""
        self._refresher.shutdown(wait=False, cancel_futures=True)
        self.passwords.close()

    def forget_device(self, account_id: str, device_id: str) -> None:
        """Drop a cached device (removed here: this instance stops serving it at once)."""
        self._devices.pop((account_id, device_id), None)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ------------------------------------------------------------------ tokens

    def session_token(self, account_id: str, profile_id: str, device_id: str | None) -> str:
        return self.signer.issue({"sub": account_id, "prf": profile_id, "dev": device_id},
                                 self.settings.session_ttl_s, SESSION)

    def caller(self, request: web.Request) -> Caller:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("send 'Authorization: Bearer <session token>' (POST /auth/sessions issues one)")
        claims = self.signer.verify(token.strip(), SESSION)
        return Caller(str(claims["sub"]), str(claims["prf"]), claims.get("dev"))

    async def account_caller(self, request: web.Request) -> Caller:
        """``caller``, for the calls that manage the account (devices, profiles) or read what
        its profiles watched and downloaded: a device-bound token must still name a registered
        device (UnknownDevice, 403), so a removed device, a stolen TV say, cannot register
        itself again, remove the others, or keep following the account's viewing."""
        caller = self.caller(request)
        if caller.device_id is not None:
            await asyncio.to_thread(self.device, caller.account_id, caller.device_id)
        return caller

    def check_maturity(self, caller: Caller, title_id: str) -> None:
        """Refused (PROFILE_MATURITY) when the caller's profile may not play the title (a state
        read: called where a session or a download starts, in a worker thread)."""
        profile = self.identity.profile(caller.account_id, caller.profile_id)
        problem = policy.maturity_problem(title_id, self.catalog.title(title_id).rating,
                                          profile.max_age if profile else AGE_BANDS[-1])
        if problem is not None:
            raise Refused("PROFILE_MATURITY", problem)

    def new_ticket(self, caller: Caller, title_id: str, kind: str = "stream", license_id: str | None = None,
                   ttl_s: int | None = None, session_id: str | None = None) -> tuple[Ticket, str]:
        device_id = caller.require_device()
        device = self.device(caller.account_id, device_id)
        ttl = ttl_s or self.settings.ticket_ttl_s
        ticket = Ticket(caller.account_id, caller.profile_id, device_id, device.device_type, device.security_level,
                        title_id, session_id or f"ps-{uuid.uuid4().hex}", kind, license_id,
                        int(self.clock()) + ttl)
        return ticket, self.signer.issue(ticket.claims(), ttl, PLAYBACK)

    def ticket(self, token: str) -> Ticket:
        c = self.signer.verify(token, PLAYBACK)
        return Ticket(c["sub"], c["prf"], c["dev"], c["dty"], c["sec"], c["ttl"], c["sid"], c["knd"], c.get("lic"),
                      int(c["exp"]))

    def trusted_header(self, request: web.Request, name: str) -> str:
        """A header only a trusted proxy may set (country, ISP): "" from any other client."""
        networks = self._proxy_networks
        if networks:
            try:
                peer = ip_address(request.remote or "")
            except ValueError:
                return ""
            if not any(peer in network for network in networks):
                return ""
        return request.headers.get(name, "")

    def country(self, request: web.Request) -> str:
        country = self.trusted_header(request, self.settings.country_header) or self.settings.default_country
        if len(country) != 2 or not country.isalpha():
            raise BadRequest(f"no client country: the edge must set {self.settings.country_header} "
                             "(ISO 3166-1 alpha-2)")
        return country.upper()


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body, or BadRequest saying what is wrong with it."""
    raw = await request.read()
    try:
        doc = json.loads(raw)
        where = lone_surrogate_at(doc) if isinstance(doc, dict) else None  # else a 500 far from here (jsontext)
    except RecursionError:  # the decoder and the walk recurse: [[[[...]]]] a few KB deep was a 500
        raise BadRequest(NESTED_TOO_DEEPLY) from None
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object")
    if where is not None:
        raise BadRequest(f"{where} {LONE_SURROGATE_HINT}")
    return doc


def field_of(doc: Mapping[str, Any], name: str, kind: type | tuple[type, ...], required: bool = True,
             default: Any = None) -> Any:
    value = doc.get(name, default)
    if value is None:
        if required:
            raise BadRequest(f"field '{name}' is required")
        return default
    if isinstance(value, bool) and kind is int or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BadRequest(f"field '{name}' must be {names}")
    return value
