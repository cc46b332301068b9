"""The manifest gateway: HLS or DASH for (title, device), rendered per request from the
published package by the packager's own renderers.

    GET /manifests/titles/{title_id}/{manifest.mpd|master.m3u8}   Bearer (device-bound)
    GET /manifests/t/{ticket}/{manifest.mpd|master.m3u8|TRACK.m3u8}

The first opens a playback session: it mints a playback ticket and writes it into every
URL the player follows (media playlists, the license server), because players cannot
add headers to those requests. Segment URLs are signed for the edge (``signing``).
Filtered to the device (codecs, resolution, no HD/UHD for software-secure CDMs, the
studio's resolution cap), and refused outside the title's territory and window.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from reelstream.gateways import policy
from reelstream.gateways.catalog import Title
from reelstream.gateways.devices import profile_for
from reelstream.gateways.errors import NotFound, Refused
from reelstream.gateways.keys import services
from reelstream.gateways.openapi import Route, add_routes
from reelstream.gateways.services import Services, Ticket
from reelstream.media.package import dash, hls

PREFIX = "/manifests"
TYPES = {"mpd": "application/dash+xml", "m3u8": "application/vnd.apple.mpegurl"}


def render(s: Services, ticket: Ticket, token: str, name: str, country: str, origin: str) -> str:
    title = s.catalog.title(ticket.title_id)
    _check_availability(s, title, country)
    profile = profile_for(ticket.device_type, ticket.security_level, title.terms.max_height)
    license_base = (s.settings.license_base_url or origin).rstrip("/")
    urls = hls.UrlBuilder(
        media_base=s.edge.media_base(title.package.storage_prefix, title.title_id, s.clock()),
        playlist_base=f"{origin}{PREFIX}/t/{token}/",
        clearkey_license=f"{license_base}/licenses/clearkey?ticket={token}",
        clearkey_key=f"{license_base}/licenses/clearkey/keys/{{key_id}}?ticket={token}")
    if name == "manifest.mpd":
        return dash.mpd(title.package, profile, urls)
    if name == "master.m3u8":
        return hls.multivariant_playlist(title.package, profile, urls)
    if name.endswith(".m3u8"):
        return hls.media_playlist(title.package, name.removesuffix(".m3u8"), profile, urls)
    raise NotFound(f"no manifest {name!r}: ask for manifest.mpd, master.m3u8 or TRACK.m3u8")


def _check_availability(s: Services, title: Title, country: str) -> None:
    probe = policy.Request(now_ms=s.now_ms(), title_id=title.title_id, device_id="", security_level="",
                           country=country, terms=title.terms, entitlements=())
    for check in (policy.check_territory, policy.check_window):
        if (denial := check(probe)) is not None:
            raise Refused(denial.reason, denial.detail)


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _response(body: str, name: str, ticket: Ticket) -> web.Response:
    return web.Response(text=body, content_type=TYPES[name.rsplit(".", 1)[-1]],
                        headers={"Cache-Control": "private, no-store", "X-Reel-Session": ticket.session_id})


async def title_manifest(request: web.Request) -> web.Response:
    s = services(request)
    caller = s.caller(request)
    name = request.match_info["name"]
    if name not in ("manifest.mpd", "master.m3u8"):
        raise NotFound("ask for manifest.mpd (DASH) or master.m3u8 (HLS)")
    title_id = request.match_info["title_id"]
    country = s.country(request)
    ticket, token = await asyncio.to_thread(s.new_ticket, caller, title_id)
    body = await asyncio.to_thread(render, s, ticket, token, name, country, _origin(request))
    response = _response(body, name, ticket)
    response.headers["X-Reel-Ticket"] = token
    return response


async def ticket_manifest(request: web.Request) -> web.Response:
    s = services(request)
    token = request.match_info["ticket"]
    ticket = s.ticket(token)
    name = request.match_info["name"]
    if not (name.endswith(".m3u8") or name == "manifest.mpd"):
        raise NotFound(f"no manifest {name!r}")
    body = await asyncio.to_thread(render, s, ticket, token, name, s.country(request), _origin(request))
    return _response(body, name, ticket)


ROUTES = (
    Route("GET", "/titles/{title_id}/{name}", title_manifest, "Open a playback session: the title's manifest "
          "for the caller's device", path_patterns={"name": "^(manifest\\.mpd|master\\.m3u8)$"},
          responses={200: "manifest", 403: "refused (territory, window, nothing playable)",
                     404: "title not published"}, produces="application/dash+xml"),
    Route("GET", "/t/{ticket}/{name}", ticket_manifest, "A manifest or media playlist of an open session",
          auth="ticket", path_patterns={"ticket": "^[A-Za-z0-9._-]{1,4096}$"},
          responses={200: "manifest or playlist", 403: "refused", 404: "no such manifest or track"},
          produces="application/vnd.apple.mpegurl"),
)


def manifests_app() -> web.Application:
    app = web.Application()
    add_routes(app, ROUTES, "ReelStream manifest gateway", __doc__ or "")
    return app
