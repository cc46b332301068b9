"""The license server: W3C Clear Key (EME §9.1) behind the DRM adapter interface.

    POST /licenses/clearkey?ticket=T            {"kids": [...], "type": ...} -> JWK set
    GET  /licenses/clearkey/keys/{kid}?ticket=T the 16 key bytes (HLS KEYFORMAT="identity")
    POST /licenses/widevine?ticket=T            CDM challenge -> the vendor's license (proxy mode)

The playback ticket (from the manifest gateway, or from ``POST /downloads`` for a
persistent license) names the account, device, title and session; nothing in the body
does, but the device must still be registered (a removed device's tickets get
UnknownDevice, 403) and its security level is the one registered now. A download ticket
gets keys only while its download is licensed to that device: not returned, not expired.
A request naming keys the device may not have (HD/UHD for a software-only CDM) gets
the others; it is refused only when none is allowed. Every decision is an event:
``LicenseGranted`` (granted and withheld key ids) or ``LicenseDenied`` with its reason,
emitted before the response and made durable without it waiting. The account state a
decision reads (entitlements, licenses, live sessions) comes from caches kept current by
the log (``views.py``, ``account_state.py``). Stateless: any instance answers any request.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web

from reelstream.events.model import Event, new_event
from reelstream.gateways import policy
from reelstream.gateways.catalog import Title
from reelstream.gateways.drm import DrmAdapter, LicenseRequest, LicenseTerms, SessionType
from reelstream.gateways.errors import BadRequest, NotFound, Refused, Unauthorized, UnknownKeyId
from reelstream.gateways.keys import services
from reelstream.gateways.openapi import Route, add_routes, array, obj
from reelstream.gateways.services import Services, Ticket
from reelstream.identity.accounts import Device
from reelstream.keys.model import ContentKey
from reelstream.processors.licenses.logic import LICENSES
from reelstream.processors.sessions.logic import live_sessions

_T = TypeVar("_T")


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class Issued:
    body: bytes
    content_type: str
    keys: tuple[ContentKey, ...]


@dataclass(frozen=True)
class Account:
    """What a decision reads about the title and the account."""

    title: Title
    entitlements: list[policy.Entitlement]
    licenses: list[policy.ActiveLicense]
    sessions: list[dict[str, Any]]
    device: Device  # the ticket's device as registered now (a removed one never gets this far)
    download: policy.ActiveLicense | None = None  # a download ticket's license; None: not found


async def read_account(s: Services, ticket: Ticket) -> Account:
    """From the caches on the event loop when all hit (the usual case: entitlements,
    licenses and live sessions are kept current by the log, devices cached for ten minutes);
    otherwise only the misses are read, concurrently (live sessions batched with other
    requests' reads, the rest in worker threads). An account's cached live sessions count
    as a miss when the concurrent-stream check could go either way on them
    (``LiveSessionCache.settled``). UnknownDevice (403) once the device has been removed:
    its tickets outlive it."""
    title = s.catalog.peek(ticket.title_id)
    entitlements = s.entitlements.peek(ticket.account_id)
    licenses = s.licenses.peek(ticket.account_id)
    sessions = s.live_sessions.peek(ticket.account_id)
    device = s.peek_device(ticket.account_id, ticket.device_id)
    if sessions is not None and not s.live_sessions.settled(ticket.account_id, sessions, s.now_ms(), ticket.device_id,
                                                            s.settings.limits.max_streams):
        sessions = None  # the stream count depends on sessions the fold cannot see into: read them
    if title is None or entitlements is None or licenses is None or sessions is None or device is None:
        title, entitlements, licenses, sessions, device = await asyncio.gather(
            _known(title) if title is not None else asyncio.to_thread(s.catalog.title, ticket.title_id),
            _known(entitlements) if entitlements is not None
            else asyncio.to_thread(s.entitlements.get, ticket.account_id),
            _known(licenses) if licenses is not None else asyncio.to_thread(s.licenses.get, ticket.account_id),
            _known(sessions) if sessions is not None else s.live_sessions.get(ticket.account_id),
            _known(device) if device is not None
            else asyncio.to_thread(s.device, ticket.account_id, ticket.device_id))
    download = await read_download(s, ticket, licenses) if ticket.kind == "download" else None
    return Account(title, entitlements, licenses, sessions, device, download)


async def read_download(s: Services, ticket: Ticket, licenses: list[policy.ActiveLicense]
                        ) -> policy.ActiveLicense | None:
    """A download ticket's license row: from the account's cached licenses (which keep
    returned downloads, see ``LicenseCache``), else from the licenses view. The cache drops
    expired rows, and may not yet hold a download another instance licensed a moment ago,
    so only those cases (rare: the player fetches a download's keys once) cost a read."""
    if ticket.license_id is None:
        return None
    cached = next((lic for lic in licenses if lic.license_id == ticket.license_id), None)
    if cached is not None:
        return cached
    row = await asyncio.to_thread(s.runtime.state.get, LICENSES, (ticket.account_id, ticket.license_id))
    return policy.licenses_of([row.values])[0] if row is not None else None


async def _known(value: _T) -> _T:
    return value


def session_type_of(request: LicenseRequest, ticket: Ticket) -> SessionType:
    """The CDM's session type; an opaque challenge (proxy mode) gets the ticket's: a download
    ticket a persistent license."""
    if not request.kids and ticket.kind == "download":
        return "persistent-license"
    return request.session_type


def decide(s: Services, ticket: Ticket, country: str, request: LicenseRequest, account: Account,
           security_ceiling: str = "hardware") -> policy.Decision:
    """Pure given ``account``: the checks of ``policy`` for the requested keys, the device's
    security level capped at what the DRM system asked can be trusted with (``DrmAdapter``)."""
    classes = account.title.key_classes
    kids = request.kids or tuple(classes)  # an opaque challenge (proxy mode) asks for the title's keys
    unknown = [k for k in kids if k not in classes]
    if unknown:
        raise UnknownKeyId(f"key id {unknown[0]} is not used by title {ticket.title_id}'s published package")
    now = s.now_ms()
    if ticket.kind == "download" and (denial := policy.check_download(
            account.download, ticket.license_id, ticket.device_id, now)) is not None:
        return denial
    # The level registered now, not the one the ticket was minted with: tickets live for up
    # to the download license's 30 days, and a device's record is the upper bound allowed.
    r = policy.Request(
        now_ms=now, title_id=ticket.title_id, device_id=ticket.device_id,
        security_level=account.device.security_level if security_ceiling == "hardware" else "software",
        country=country, terms=account.title.terms,
        entitlements=account.entitlements, key_classes={k: classes[k] for k in kids},
        other_live_devices=len(live_sessions(account.sessions, now, except_device=ticket.device_id)),
        licenses=account.licenses)
    if session_type_of(request, ticket) == "persistent-license":
        if ticket.kind != "download":
            raise BadRequest("persistent licenses are issued only for downloads: POST /downloads first")
        # The download's row holds its expiry to the millisecond (and a renewal's); the
        # ticket's is whole seconds, and recording it would shorten the download each fetch.
        expires = account.download.expires_ms if account.download is not None else None
        return policy.decide_offline_keys(r, s.settings.limits, expires or ticket.expires_s * 1000)
    return policy.decide_streaming(r, s.settings.limits)


async def content_keys(s: Services, title_id: str, kids: tuple[str, ...]) -> tuple[ContentKey, ...]:
    cached = [s.catalog.peek_key(title_id, k) for k in kids]
    if all(k is not None for k in cached):
        return tuple(k for k in cached if k is not None)
    return tuple(await asyncio.to_thread(lambda: [s.catalog.content_key(title_id, k) for k in kids]))


def license_id_of(ticket: Ticket, session_type: SessionType) -> str:
    """The license a grant records: a download's persistent license is its download's row;
    anything else is one streaming license per playback session (a renewal or a second key
    request in the same session updates it, so an account's licenses grow with sessions,
    not requests).

    A temporary license on a download ticket is streaming too, under its own id: the
    download response's manifest_url and license_url are usable online, and their HLS key
    route always asks for a temporary license, so refusing temporary sessions there would
    break players that stream what they are downloading. Recorded under the download's id,
    its 6-hour expiry overwrote the download's 30 days, and the download vanished from the
    account's list and its limits."""
    if session_type == "persistent-license" and ticket.license_id is not None:
        return ticket.license_id
    return f"lic-{ticket.session_id}"


async def issue(s: Services, ticket: Ticket, country: str, adapter: DrmAdapter, body: bytes) -> Issued:
    """Decide, build the license, and emit the decision's event (durable soon after; the
    response does not wait for the log: see ``Publisher.emit``).

    One account's requests decide one at a time on this instance (``AccountLocks``): the
    reads and the fold of the grant come between a decision and the next one seeing it, so
    parallel requests of five devices all passed a limit of three streams. The vendor's
    call (proxy mode) comes after, outside the lock: a household starting three streams at
    once waited for each other's vendor round trips. Should the vendor fail, the grant is
    withdrawn from what this instance counts, and no event says it. Across instances the
    limits stay eventually consistent (the log)."""
    request = adapter.parse(body)
    async with s.licenses.locks.hold(ticket.account_id):
        held = await _decide_and_count(s, ticket, country, request, adapter.security_ceiling)
    try:
        license_body = await adapter.issue(held.request, held.keys, held.terms, body)  # proxy mode: the vendor
    except BaseException:
        s.licenses.withdraw(held.event)
        if held.streaming:
            s.live_sessions.withdraw(ticket.account_id, ticket.session_id)
        raise
    s.publisher.emit([held.event])
    return Issued(license_body, adapter.content_type, held.keys)


@dataclass(frozen=True)
class _Held:
    """A grant decided and counted on this instance, its license not built yet."""

    request: LicenseRequest
    keys: tuple[ContentKey, ...]
    terms: LicenseTerms
    event: Event
    streaming: bool


async def _decide_and_count(s: Services, ticket: Ticket, country: str, request: LicenseRequest,
                            security_ceiling: str) -> _Held:
    account = await read_account(s, ticket)
    decision = decide(s, ticket, country, request, account, security_ceiling)
    common = {"user_id": ticket.account_id, "device_id": ticket.device_id, "title_id": ticket.title_id}
    if isinstance(decision, policy.Denial):
        s.publisher.emit([new_event("LicenseDenied", {
            **common, "key_ids": list(request.kids or account.title.key_classes), "reason": decision.reason,
            "detail": decision.detail},
            producer=s.producer, correlation_id=ticket.session_id)])
        raise Refused(decision.reason, decision.detail)
    keys = await content_keys(s, ticket.title_id, decision.key_ids)
    session_type = session_type_of(request, ticket)
    classes = account.title.key_classes
    terms = LicenseTerms(decision.expires_ms, session_type == "persistent-license", ticket.title_id,
                         {k: classes[k] for k in decision.key_ids}, s.now_ms())
    event = new_event("LicenseGranted", {
        **common, "license_id": license_id_of(ticket, session_type), "key_ids": list(decision.key_ids),
        "session_type": session_type, "expires_at": at(decision.expires_ms),
        "playback_session_id": ticket.session_id,
        "withheld_keys": [{"key_id": k, "reason": why} for k, why in decision.withheld]},
        producer=s.producer, correlation_id=ticket.session_id)
    s.licenses.apply(event)  # this instance sees its own grant at once (device limit)
    streaming = session_type != "persistent-license"
    if streaming:
        # A stream from now on, not from when reel.sessions announces it (concurrent streams).
        s.live_sessions.granted(ticket.account_id, ticket.session_id, ticket.device_id)
    return _Held(LicenseRequest(decision.key_ids, session_type), keys, terms, event, streaming)


def ticket_of(request: web.Request, s: Services) -> Ticket:
    token = request.query.get("ticket")
    if not token:
        raise Unauthorized("license requests carry the playback ticket from the manifest (?ticket=...)")
    return s.ticket(token)


async def clearkey_license(request: web.Request) -> web.Response:
    s = services(request)
    ticket = ticket_of(request, s)
    issued = await issue(s, ticket, s.country(request), s.adapters["clearkey"], await request.read())
    return web.Response(body=issued.body, content_type=issued.content_type,
                        headers={"Cache-Control": "no-store"})


async def clearkey_key(request: web.Request) -> web.Response:
    """HLS ``KEYFORMAT="identity"``: the player fetches the raw key of one KID."""
    s = services(request)
    ticket = ticket_of(request, s)
    kid = request.match_info["kid"].lower().replace("-", "")
    if len(kid) != 32 or any(c not in "0123456789abcdef" for c in kid):
        raise BadRequest("the key id must be 32 hex digits")
    body = json.dumps({"kids": [_b64(kid)], "type": "temporary"}).encode()
    issued = await issue(s, ticket, s.country(request), s.adapters["clearkey"], body)
    return web.Response(body=issued.keys[0].key, content_type="application/octet-stream",
                        headers={"Cache-Control": "no-store"})


async def widevine_license(request: web.Request) -> web.Response:
    """Proxy mode: the CDM's opaque challenge in, the vendor's license out, after the policy."""
    s = services(request)
    ticket = ticket_of(request, s)
    adapter = s.adapters.get("widevine")
    if adapter is None:
        raise NotFound("this license server has no Widevine license service configured (REEL_WIDEVINE_PROXY_URL)")
    issued = await issue(s, ticket, s.country(request), adapter, await request.read())
    return web.Response(body=issued.body, content_type=issued.content_type, headers={"Cache-Control": "no-store"})


def _b64(kid_hex: str) -> str:
    from reelstream.identity.tokens import b64url

    return b64url(bytes.fromhex(kid_hex))


TICKET = {"ticket": {"type": "string", "maxLength": 4096}}
B64URL = {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}
JWK_SET = obj(["keys", "type"], keys=array(obj(["kty", "kid", "k"], kty={"type": "string", "enum": ["oct"]},
                                               kid=B64URL, k=B64URL)),
              type={"type": "string", "enum": ["temporary", "persistent-license"]})
ROUTES = (
    Route("POST", "/clearkey", clearkey_license, "Clear Key license (W3C EME §9.1): JWK set for the key ids",
          auth="ticket", query=TICKET,
          body={"type": "object", "required": ["kids"], "properties": {
              "kids": {"type": "array", "items": {"type": "string"}, "minItems": 1},
              "type": {"type": "string", "enum": ["temporary", "persistent-license"]}}},
          responses={200: "JSON Web Key set", 403: "refused; 'reason' is the LicenseDenied reason (absent: "
                     "the ticket's device was removed)", 404: "title not published"}, returns=JWK_SET),
    Route("POST", "/widevine", widevine_license, "Widevine license (proxy mode): the CDM's challenge is "
          "forwarded to the vendor's license service with the policy's decision",
          auth="ticket", query=TICKET, produces="application/octet-stream",
          responses={200: "the vendor's license bytes", 403: "refused (the vendor is not called)",
                     404: "no Widevine service configured, or title not published",
                     502: "the vendor's license service failed"}),
    Route("GET", "/clearkey/keys/{kid}", clearkey_key, "One raw content key (HLS identity key format)",
          auth="ticket", query=TICKET, produces="application/octet-stream",
          responses={200: "16 key bytes", 403: "refused", 404: "title not published"}),
)


def licenses_app() -> web.Application:
    app = web.Application()
    add_routes(app, ROUTES, "ReelStream license server", __doc__ or "")
    return app
