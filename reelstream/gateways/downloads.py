"""The downloads gateway: persistent (offline) licenses with limits, renewal and return.

    POST   /downloads/licenses                      {"title_id"} -> 201 download license + ticket
    GET    /downloads/licenses                      this account's active downloads
    POST   /downloads/licenses/{license_id}/renew   -> 201 renewed license + ticket
    DELETE /downloads/licenses/{license_id}         -> 204 returned

A download is licensed only when the studio's terms allow it, within the account's and
the device's limits, and with the same territory, window, entitlement and security
checks as streaming. The response carries a *download ticket*: the player fetches its
persistent Clear Key license with it (``type: "persistent-license"``) and the manifest.
The license expires after 30 days (or when the entitlement or window ends) and 48 hours
after playback starts; the player enforces both offline (``policy.offline_playable``).
Every outcome is an event: ``DownloadLicensed`` (``renewal`` on renew),
``DownloadReturned``, or ``LicenseDenied`` with the reason.

Limits, the list, renewal and return read the license cache with this gateway's own
events folded in, not the lagging licenses view: a download is listed (and counted) as
soon as it is licensed, and gone once returned. An account's requests are decided one at
a time per instance (``AccountLocks``); across instances the limits are eventually
consistent.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import web

from reelstream.events.model import new_event
from reelstream.gateways import policy
from reelstream.gateways.errors import BadRequest, NotFound, Refused
from reelstream.gateways.keys import services
from reelstream.gateways.licenses import at
from reelstream.gateways.openapi import BOOL, ID, INT, STR, Route, add_routes, array, obj
from reelstream.gateways.services import Caller, Services, field_of, json_body
from reelstream.processors.licenses.logic import LICENSES

# Namespace of DownloadReturned event ids: one per download, so a return written twice (a
# retried DELETE that reached two instances, a producer retry) is de-duplicated by consumers.
_RETURN_IDS = uuid.UUID("0b7c2a4e-6f1d-4c8a-9e35-2d4f6a8b1c73")


def returned_event_id(account_id: str, license_id: str) -> str:
    return str(uuid.uuid5(_RETURN_IDS, f"{account_id}/{license_id}"))


def _request(s: Services, caller: Caller, title_id: str, country: str, ignore: str | None = None
             ) -> policy.Request:
    device = s.device(caller.account_id, caller.require_device())
    title = s.catalog.title(title_id)
    # The license cache, not the view: it holds this gateway's own DownloadLicensed at once,
    # where the view lags by the processor's delay (counted from the view, a device's
    # limit of 10 let 11 fast sequential downloads through, and 20 parallel ones).
    licenses = [lic for lic in s.licenses.get(caller.account_id) if lic.license_id != ignore]
    return policy.Request(now_ms=s.now_ms(), title_id=title_id, device_id=device.device_id,
                          security_level=device.security_level, country=country, terms=title.terms,
                          entitlements=s.entitlements.get(caller.account_id),
                          key_classes=title.key_classes, licenses=licenses)


def _download_row(s: Services, caller: Caller, license_id: str) -> dict[str, Any]:
    """The caller's active download ``license_id`` as this gateway knows it (its own returns
    and renewals included), else NotFound. The cache drops expired downloads; those are
    read from the view, since an expired download is renewed, not licensed again."""
    values = next((v for v in s.licenses.rows(caller.account_id) if v["license_id"] == license_id), None)
    if values is None:
        row = s.runtime.state.get(LICENSES, (caller.account_id, license_id))
        values = row.values if row is not None else None
    if values is None or values["kind"] != "download" or values["returned"]:
        raise NotFound(f"no active download {license_id} on this account (returned downloads are gone: "
                       "POST /downloads/licenses to download the title again)")
    if values["device_id"] != caller.device_id:
        raise NotFound(f"download {license_id} belongs to another device")
    return values


async def _license(s: Services, request: web.Request, caller: Caller, title_id: str | None,
                   renewing: str | None) -> web.Response:
    """License ``title_id``, or renew the download ``renewing``: decided and folded under the
    account's lock (``AccountLocks``), so parallel requests see each other's downloads."""
    async with s.licenses.locks.hold(caller.account_id):
        if renewing is not None:
            title_id = (await asyncio.to_thread(_download_row, s, caller, renewing))["title_id"]
        if title_id is None:
            raise BadRequest("field 'title_id' is required")
        await asyncio.to_thread(s.check_maturity, caller, title_id)
        r = await asyncio.to_thread(_request, s, caller, title_id, s.country(request), renewing)
        decision = policy.decide_download(r, s.settings.limits)
        if isinstance(decision, policy.Denial):
            await s.publisher.publish([new_event("LicenseDenied", {
                "user_id": caller.account_id, "device_id": r.device_id, "title_id": title_id, "key_ids": [],
                "reason": decision.reason, "detail": decision.detail}, producer=s.producer)])
            raise Refused(decision.reason, decision.detail)
        license_id = renewing or f"dl-{uuid.uuid4().hex}"
        window = s.settings.limits.download_playback_ms
        licensed = new_event("DownloadLicensed", {
            "license_id": license_id, "user_id": caller.account_id, "device_id": r.device_id,
            "title_id": title_id, "expires_at": at(decision.expires_ms), "playback_window_ms": window,
            "renewal": renewing is not None}, producer=s.producer, correlation_id=license_id)
        await s.publisher.publish([licensed])
        # The license server checks a download ticket against the download's row: the player asks
        # for its keys at once, before the licenses view (or this instance's follower) has it.
        s.licenses.apply(licensed)
    ttl = max(1, decision.expires_ms // 1000 - int(s.clock()))
    _, token = await asyncio.to_thread(s.new_ticket, caller, title_id, "download", license_id, ttl)
    origin = f"{request.scheme}://{request.host}"
    license_base = (s.settings.license_base_url or origin).rstrip("/")
    return web.json_response({
        "license_id": license_id, "title_id": title_id, "expires_at_ms": decision.expires_ms,
        "playback_window_ms": window, "renewal": renewing is not None, "ticket": token,
        "license_url": f"{license_base}/licenses/clearkey?ticket={token}",
        "manifest_url": f"{origin}/manifests/t/{token}/manifest.mpd"}, status=201)


async def create_download(request: web.Request) -> web.Response:
    s = services(request)
    caller = s.caller(request)
    caller.require_device()
    doc = await json_body(request)
    return await _license(s, request, caller, field_of(doc, "title_id", str), None)


async def renew_download(request: web.Request) -> web.Response:
    s = services(request)
    caller = s.caller(request)
    caller.require_device()
    return await _license(s, request, caller, None, request.match_info["license_id"])


async def return_download(request: web.Request) -> web.Response:
    """A second return of a download is a 404 with no event (it is no longer active); the
    event's id is the download's own, so one written twice anyway is de-duplicated."""
    s = services(request)
    caller = s.caller(request)
    caller.require_device()
    async with s.licenses.locks.hold(caller.account_id):
        v = await asyncio.to_thread(_download_row, s, caller, request.match_info["license_id"])
        returned = new_event("DownloadReturned", {
            "license_id": v["license_id"], "user_id": caller.account_id, "device_id": v["device_id"],
            "title_id": v["title_id"]}, producer=s.producer, correlation_id=v["license_id"],
            event_id=returned_event_id(caller.account_id, v["license_id"]))
        await s.publisher.publish([returned])
        s.licenses.apply(returned)  # its ticket gets no more keys from this instance, from now on
    return web.Response(status=204)


def _active(s: Services, caller: Caller) -> list[dict[str, Any]]:
    now = s.now_ms()
    # expires_ms: the name this list used before it matched the license's expires_at_ms (deprecated)
    return [{"license_id": v["license_id"], "title_id": v["title_id"], "device_id": v["device_id"],
             "expires_at_ms": v["expires_ms"], "expires_ms": v["expires_ms"]}
            for v in s.licenses.rows(caller.account_id)
            if v["kind"] == "download" and not v["returned"] and (v["expires_ms"] or 0) > now]


async def list_downloads(request: web.Request) -> web.Response:
    s = services(request)
    caller = await s.account_caller(request)
    return web.json_response({"downloads": await asyncio.to_thread(_active, s, caller)})


LICENSED = obj(["license_id", "title_id", "expires_at_ms", "playback_window_ms", "renewal", "ticket",
                "license_url", "manifest_url"],
               license_id=ID, title_id=ID, expires_at_ms=INT, playback_window_ms=INT, renewal=BOOL, ticket=ID,
               license_url={"type": "string", "format": "uri"}, manifest_url={"type": "string", "format": "uri"})
ACTIVE = obj(["license_id", "title_id", "device_id", "expires_at_ms"],
             license_id=ID, title_id=ID, device_id=ID, expires_at_ms=INT,
             expires_ms={**INT, "deprecated": True, "description": "the same as expires_at_ms"})

ROUTES = (
    Route("POST", "/licenses", create_download, "License a download (persistent license with expiry)",
          body=obj(["title_id"], title_id=STR),
          responses={201: "download license and ticket", 403: "refused; 'reason' says why",
                     404: "title not published"}, returns=LICENSED),
    Route("GET", "/licenses", list_downloads, "This account's active downloads (including those licensed, and "
          "without those returned, a moment ago)", responses={200: "downloads", 403: "the token's device was removed"},
          returns=obj(["downloads"], downloads=array(ACTIVE))),
    Route("POST", "/licenses/{license_id}/renew", renew_download, "Renew a download's license (not a returned "
          "one: license the title again)",
          responses={201: "renewed", 403: "refused", 404: "no such active download (returned, unknown, or "
                     "another device's)"}, returns=LICENSED),
    Route("DELETE", "/licenses/{license_id}", return_download, "Return a download. Not idempotent: returning it "
          "again is a 404 and writes nothing (the one DownloadReturned event's id is derived from the download, "
          "so a return that was written twice anyway is de-duplicated)",
          responses={204: "returned", 404: "no such active download (already returned, unknown, or another "
                     "device's)"}),
)


def downloads_app() -> web.Application:
    app = web.Application()
    add_routes(app, ROUTES, "ReelStream downloads gateway", __doc__ or "")
    return app
