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
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiohttp import web

from reelstream.events.model import new_event
from reelstream.gateways import policy
from reelstream.gateways.errors import NotFound, Refused
from reelstream.gateways.keys import services
from reelstream.gateways.licenses import at
from reelstream.gateways.openapi import STR, Route, add_routes, obj
from reelstream.gateways.services import Caller, Services, field_of, json_body
from reelstream.processors.licenses.logic import LICENSES
from reelstream.stores.ports import Row


def _request(s: Services, caller: Caller, title_id: str, country: str, ignore: str | None = None
             ) -> policy.Request:
    device = s.device(caller.account_id, caller.require_device())
    title = s.catalog.title(title_id)
    rows = [r.values for r in s.runtime.state.query(LICENSES, (caller.account_id,))
            if r.values["license_id"] != ignore]
    return policy.Request(now_ms=s.now_ms(), title_id=title_id, device_id=device.device_id,
                          security_level=device.security_level, country=country, terms=title.terms,
                          entitlements=s.entitlements.get(caller.account_id),
                          key_classes=title.key_classes, licenses=policy.licenses_of(rows))


def _download_row(s: Services, caller: Caller, license_id: str) -> Row:
    row = s.runtime.state.get(LICENSES, (caller.account_id, license_id))
    if row is None or row.values["kind"] != "download" or row.values["returned"]:
        raise NotFound(f"no active download {license_id} on this account")
    if row.values["device_id"] != caller.device_id:
        raise NotFound(f"download {license_id} belongs to another device")
    return row


async def _license(s: Services, request: web.Request, caller: Caller, title_id: str,
                   license_id: str | None) -> web.Response:
    renewal = license_id is not None
    r = await asyncio.to_thread(_request, s, caller, title_id, s.country(request), license_id)
    decision = policy.decide_download(r, s.settings.limits)
    if isinstance(decision, policy.Denial):
        await s.publisher.publish([new_event("LicenseDenied", {
            "user_id": caller.account_id, "device_id": r.device_id, "title_id": title_id, "key_ids": [],
            "reason": decision.reason, "detail": decision.detail}, producer=s.producer)])
        raise Refused(decision.reason, decision.detail)
    license_id = license_id or f"dl-{uuid.uuid4().hex}"
    window = s.settings.limits.download_playback_ms
    licensed = new_event("DownloadLicensed", {
        "license_id": license_id, "user_id": caller.account_id, "device_id": r.device_id, "title_id": title_id,
        "expires_at": at(decision.expires_ms), "playback_window_ms": window, "renewal": renewal},
        producer=s.producer, correlation_id=license_id)
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
        "playback_window_ms": window, "renewal": renewal, "ticket": token,
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
    row = await asyncio.to_thread(_download_row, s, caller, request.match_info["license_id"])
    return await _license(s, request, caller, row.values["title_id"], row.values["license_id"])


async def return_download(request: web.Request) -> web.Response:
    s = services(request)
    caller = s.caller(request)
    caller.require_device()
    row = await asyncio.to_thread(_download_row, s, caller, request.match_info["license_id"])
    v = row.values
    returned = new_event("DownloadReturned", {
        "license_id": v["license_id"], "user_id": caller.account_id, "device_id": v["device_id"],
        "title_id": v["title_id"]}, producer=s.producer, correlation_id=v["license_id"])
    await s.publisher.publish([returned])
    s.licenses.apply(returned)  # its ticket gets no more keys from this instance, from now on
    return web.Response(status=204)


def _active(s: Services, caller: Caller) -> list[dict[str, Any]]:
    now = s.now_ms()
    return [{k: r.values[k] for k in ("license_id", "title_id", "device_id", "expires_ms")}
            for r in s.runtime.state.query(LICENSES, (caller.account_id,))
            if r.values["kind"] == "download" and not r.values["returned"]
            and (r.values["expires_ms"] or 0) > now]


async def list_downloads(request: web.Request) -> web.Response:
    s = services(request)
    caller = s.caller(request)
    return web.json_response({"downloads": await asyncio.to_thread(_active, s, caller)})


ROUTES = (
    Route("POST", "/licenses", create_download, "License a download (persistent license with expiry)",
          body=obj(["title_id"], title_id=STR),
          responses={201: "download license and ticket", 403: "refused; 'reason' says why",
                     404: "title not published"}),
    Route("GET", "/licenses", list_downloads, "This account's active downloads", responses={200: "downloads"}),
    Route("POST", "/licenses/{license_id}/renew", renew_download, "Renew a download's license",
          responses={201: "renewed", 403: "refused", 404: "no such active download"}),
    Route("DELETE", "/licenses/{license_id}", return_download, "Return a download",
          responses={204: "returned", 404: "no such active download"}),
)


def downloads_app() -> web.Application:
    app = web.Application()
    add_routes(app, ROUTES, "ReelStream downloads gateway", __doc__ or "")
    return app
