"""The manifest gateway: HLS or DASH for (title, device), rendered per request from the
published package by the packager's own renderers.

    GET /manifests/titles/{title_id}/{manifest.mpd|master.m3u8}   Bearer (device-bound)
    GET /manifests/t/{ticket}/{manifest.mpd|master.m3u8|TRACK.m3u8}
    GET /manifests/t/{ticket}/p/{pathway}/TRACK.m3u8              (HLS, one steering pathway)

The first opens a playback session: it mints a playback ticket and writes it into every
URL the player follows (media playlists, the license server), because players cannot
add headers to those requests. Segment URLs are signed for the edge (``signing``).
Filtered to the device (codecs, resolution, no HD/UHD for software-secure CDMs, the
studio's resolution cap), and refused outside the title's territory and window.

Content steering (with ``REEL_EDGE_PATHWAYS`` and ``REEL_STEERING_URL``): every edge
tier is a pathway with its own segment URLs, signed with the one edge secret so they are
valid on every pathway; the manifest names the steering server with this session, title
and the viewer's ISP (``REEL_ISP_HEADER``), and the player asks it which pathway to use
(HLS ``EXT-X-CONTENT-STEERING``, DASH ``<ContentSteering>``), moving between tiers
mid-session without a new manifest.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from functools import lru_cache

from aiohttp import web

from reelstream.edge.steering import SessionContext, parse_pathways, steering_uri
from reelstream.gateways import policy
from reelstream.gateways.catalog import Title
from reelstream.gateways.devices import profile_for
from reelstream.gateways.errors import NotFound, Refused
from reelstream.gateways.keys import services
from reelstream.gateways.openapi import Route, add_routes
from reelstream.gateways.services import Services, Ticket
from reelstream.gateways.signing import EdgeSigner
from reelstream.media.package import dash, hls

PREFIX = "/manifests"
TYPES = {"mpd": "application/dash+xml", "m3u8": "application/vnd.apple.mpegurl"}
SESSION_HEADER = "the playback session id: heartbeats carry it as 'sid'"


def render(s: Services, ticket: Ticket, token: str, name: str, country: str, origin: str,
           isp: str | None = None, pathway: str | None = None) -> str:
    title = s.catalog.title(ticket.title_id)
    _check_availability(s, title, country, ticket.account_id)
    profile = profile_for(ticket.device_type, ticket.security_level, title.terms.max_height,
                          s.settings.clearkey_security)
    license_base = (s.settings.license_base_url or origin).rstrip("/")
    now = s.clock()
    urls = hls.UrlBuilder(
        media_base=s.edge.media_base(title.package.storage_prefix, title.title_id, now),
        playlist_base=f"{origin}{PREFIX}/t/{token}/",
        clearkey_license=f"{license_base}/licenses/clearkey?ticket={token}",
        clearkey_key=f"{license_base}/licenses/clearkey/keys/{{key_id}}?ticket={token}")
    steering = _steering(s, ticket, token, origin, isp, urls, title.package.storage_prefix, now)
    if pathway is not None:  # a media playlist of one pathway: its segments on that edge
        chosen = next((p for p in steering.pathways if p.pathway_id == pathway), None) if steering else None
        if chosen is None or not name.endswith(".m3u8") or name == "master.m3u8":
            raise NotFound(f"no pathway {pathway!r} media playlist {name!r}")
        return hls.media_playlist(title.package, name.removesuffix(".m3u8"), profile, chosen.urls)
    if name == "manifest.mpd":
        # With steering, segment URLs are relative to the chosen pathway's BaseURL.
        return dash.mpd(title.package, profile, replace(urls, media_base="") if steering else urls, steering)
    if name == "master.m3u8":
        return hls.multivariant_playlist(title.package, profile, urls, steering)
    if name.endswith(".m3u8"):
        return hls.media_playlist(title.package, name.removesuffix(".m3u8"), profile, urls)
    raise NotFound(f"no manifest {name!r}: ask for manifest.mpd, master.m3u8 or TRACK.m3u8")


def _steering(s: Services, ticket: Ticket, token: str, origin: str, isp: str | None, urls: hls.UrlBuilder,
              storage_prefix: str, now: float) -> hls.ContentSteering | None:
    """Every configured edge as a pathway (signed with the same expiry), and this session's
    steering URI; None without steering settings."""
    pathways = _pathways(s.settings.edge_pathways)
    if not pathways or not s.settings.steering_url:
        return None
    context = SessionContext(ticket.session_id, ticket.title_id, isp)
    return hls.ContentSteering(steering_uri(s.settings.steering_url, context), tuple(
        hls.Pathway(name, replace(
            urls, media_base=EdgeSigner(base, s.settings.edge_secret, s.settings.ticket_ttl_s)
            .media_base(storage_prefix, ticket.title_id, now),
            playlist_base=f"{origin}{PREFIX}/t/{token}/p/{name}/"))
        for name, base in pathways))


@lru_cache(maxsize=8)
def _pathways(setting: str) -> tuple[tuple[str, str], ...]:
    return parse_pathways(setting)  # checked at start by GatewaySettings


def _isp(s: Services, request: web.Request) -> str | None:
    """The viewer's ISP from the trusted header (or the default); only the steering server reads it."""
    isp = s.trusted_header(request, s.settings.isp_header) or s.settings.default_isp
    return isp[:64] or None


def _check_availability(s: Services, title: Title, country: str, account_id: str) -> None:
    """Territory, window and entitlement, before any signed URL is handed out: the license
    server would refuse the keys anyway, but an unentitled account got the clear subtitles
    and hours of signed, encrypted segments from the edges."""
    probe = policy.Request(now_ms=s.now_ms(), title_id=title.title_id, device_id="", security_level="",
                           country=country, terms=title.terms, entitlements=s.entitlements.get(account_id))
    for check in (policy.check_territory, policy.check_window):
        if (denial := check(probe)) is not None:
            raise Refused(denial.reason, denial.detail)
    if isinstance(entitled := policy.entitlement_for(probe), policy.Denial):
        raise Refused(entitled.reason, entitled.detail)


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
    await asyncio.to_thread(s.check_maturity, caller, title_id)
    ticket, token = await asyncio.to_thread(s.new_ticket, caller, title_id)
    body = await asyncio.to_thread(render, s, ticket, token, name, country, _origin(request), _isp(s, request))
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
    # A ticket outlives its device's removal (a download's, by 30 days): without this a
    # removed device kept getting freshly signed edge URLs, each good for hours more.
    await asyncio.to_thread(s.device, ticket.account_id, ticket.device_id)
    body = await asyncio.to_thread(render, s, ticket, token, name, s.country(request), _origin(request),
                                   _isp(s, request), request.match_info.get("pathway"))
    return _response(body, name, ticket)


ROUTES = (
    Route("GET", "/titles/{title_id}/{name}", title_manifest, "Open a playback session: the title's manifest "
          "for the caller's device", path_patterns={"name": "^(manifest\\.mpd|master\\.m3u8)$"},
          responses={200: "manifest", 403: "refused (territory, window, entitlement, the profile's maturity limit, "
                                          "nothing playable)",
                     404: "title not published"}, produces=tuple(TYPES.values()),
          headers={"X-Reel-Ticket": "the session's playback ticket: the license server's ?ticket= and the "
                                    "/t/{ticket}/ manifest paths take it",
                   "X-Reel-Session": SESSION_HEADER}),
    Route("GET", "/t/{ticket}/{name}", ticket_manifest, "A manifest or media playlist of an open session",
          auth="ticket", path_patterns={"ticket": "^[A-Za-z0-9._-]{1,4096}$"},
          responses={200: "manifest or playlist", 403: "refused, a track not offered to this device, or the ticket's device was removed",
                     404: "no such manifest or track"},
          produces=tuple(TYPES.values()), headers={"X-Reel-Session": SESSION_HEADER}),
    Route("GET", "/t/{ticket}/p/{pathway}/{name}", ticket_manifest, "An HLS media playlist of an open session "
          "with its segments on one content-steering pathway", auth="ticket",
          path_patterns={"ticket": "^[A-Za-z0-9._-]{1,4096}$", "pathway": "^[A-Za-z0-9._-]{1,64}$"},
          responses={200: "media playlist", 403: "refused, a track not offered to this device, or the ticket's device was removed",
                     404: "no such pathway or track"},
          produces="application/vnd.apple.mpegurl", headers={"X-Reel-Session": SESSION_HEADER}),
)


def manifests_app() -> web.Application:
    app = web.Application()
    add_routes(app, ROUTES, "ReelStream manifest gateway", __doc__ or "")
    return app
