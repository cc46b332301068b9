"""The license server: W3C Clear Key (EME §9.1) behind the DRM adapter interface.

    POST /licenses/clearkey?ticket=T            {"kids": [...], "type": ...} -> JWK set
    GET  /licenses/clearkey/keys/{kid}?ticket=T the 16 key bytes (HLS KEYFORMAT="identity")

The playback ticket (from the manifest gateway, or from ``POST /downloads`` for a
persistent license) names the account, device, title and session; nothing in the body
does. Every decision is an event: ``LicenseGranted`` or ``LicenseDenied`` with its reason,
durable before the response. Stateless: any instance answers any request.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from reelstream.events.model import new_event
from reelstream.gateways import policy
from reelstream.gateways.drm import DrmAdapter, LicenseRequest, LicenseTerms
from reelstream.gateways.errors import BadRequest, Refused, Unauthorized, UnknownKeyId
from reelstream.gateways.keys import services
from reelstream.gateways.openapi import Route, add_routes
from reelstream.gateways.services import Services, Ticket
from reelstream.keys.model import ContentKey
from reelstream.processors.licenses.logic import LICENSES
from reelstream.processors.sessions.logic import LIVE_SESSIONS, live_sessions


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class Issued:
    body: bytes
    content_type: str
    keys: tuple[ContentKey, ...]


def policy_request(s: Services, ticket: Ticket, country: str, key_classes: dict[str, str]) -> policy.Request:
    """Read what a decision needs: title terms, entitlements (cached), live sessions, licenses."""
    title = s.catalog.title(ticket.title_id)
    now = s.now_ms()
    sessions = [r.values for r in s.runtime.state.query(LIVE_SESSIONS, (ticket.account_id,))]
    licenses = policy.licenses_of(r.values for r in s.runtime.state.query(LICENSES, (ticket.account_id,)))
    return policy.Request(
        now_ms=now, title_id=ticket.title_id, device_id=ticket.device_id, security_level=ticket.security_level,
        country=country, terms=title.terms, entitlements=s.entitlements.get(ticket.account_id),
        key_classes=key_classes,
        other_live_devices=len(live_sessions(sessions, now, except_device=ticket.device_id)),
        licenses=licenses)


def decide(s: Services, ticket: Ticket, country: str, request: LicenseRequest) -> policy.Decision:
    classes = s.catalog.title(ticket.title_id).key_classes
    unknown = [k for k in request.kids if k not in classes]
    if unknown:
        raise UnknownKeyId(f"key id {unknown[0]} is not used by title {ticket.title_id}'s published package")
    r = policy_request(s, ticket, country, {k: classes[k] for k in request.kids})
    if request.session_type == "persistent-license":
        if ticket.kind != "download":
            raise BadRequest("persistent licenses are issued only for downloads: POST /downloads first")
        return policy.decide_offline_keys(r, s.settings.limits, ticket.expires_s * 1000)
    return policy.decide_streaming(r, s.settings.limits)


async def issue(s: Services, ticket: Ticket, country: str, adapter: DrmAdapter, body: bytes) -> Issued:
    request = adapter.parse(body)
    decision = await asyncio.to_thread(decide, s, ticket, country, request)
    common = {"user_id": ticket.account_id, "device_id": ticket.device_id, "title_id": ticket.title_id}
    if isinstance(decision, policy.Denial):
        await s.publisher.publish([new_event("LicenseDenied", {
            **common, "key_ids": list(request.kids), "reason": decision.reason, "detail": decision.detail},
            producer=s.producer, correlation_id=ticket.session_id)])
        raise Refused(decision.reason, decision.detail)
    keys = tuple(await asyncio.to_thread(lambda: [s.catalog.content_key(ticket.title_id, k) for k in request.kids]))
    license_body = adapter.license(request, keys, LicenseTerms(decision.expires_ms,
                                                               request.session_type == "persistent-license"))
    await s.publisher.publish([new_event("LicenseGranted", {
        **common, "license_id": ticket.license_id or f"lic-{uuid.uuid4().hex}", "key_ids": list(request.kids),
        "session_type": request.session_type, "expires_at": at(decision.expires_ms),
        "playback_session_id": ticket.session_id}, producer=s.producer, correlation_id=ticket.session_id)])
    return Issued(license_body, adapter.content_type, keys)


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


def _b64(kid_hex: str) -> str:
    from reelstream.identity.tokens import b64url

    return b64url(bytes.fromhex(kid_hex))


TICKET = {"ticket": {"type": "string", "maxLength": 4096}}
ROUTES = (
    Route("POST", "/clearkey", clearkey_license, "Clear Key license (W3C EME §9.1): JWK set for the key ids",
          auth="ticket", query=TICKET,
          body={"type": "object", "required": ["kids"], "properties": {
              "kids": {"type": "array", "items": {"type": "string"}, "minItems": 1},
              "type": {"type": "string", "enum": ["temporary", "persistent-license"]}}},
          responses={200: "JSON Web Key set", 403: "refused; 'reason' is the LicenseDenied reason",
                     404: "title not published"}),
    Route("GET", "/clearkey/keys/{kid}", clearkey_key, "One raw content key (HLS identity key format)",
          auth="ticket", query=TICKET, produces="application/octet-stream",
          responses={200: "16 key bytes", 403: "refused", 404: "title not published"}),
)


def licenses_app() -> web.Application:
    app = web.Application()
    add_routes(app, ROUTES, "ReelStream license server", __doc__ or "")
    return app
