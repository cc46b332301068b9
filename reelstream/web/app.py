"""The web player app: the page people use (sign in, catalog with posters, title page,
playback with Shaka Player), its static files, Shaka Player from ``web/node_modules`` or
``REEL_SHAKA_DIR``
(no outside network), and two reads the page needs besides the gateways' API: the
published catalog and posters.

Mounted by the gateways' root app (or ``reel up``) at ``/web``; the page talks to the
gateways on the same origin (``/auth``, ``/manifests``, ``/licenses``, ``/playback``,
``/downloads``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from aiohttp import web

from reelstream.errors import ObjectNotFound
from reelstream.gateways.errors import NotFound
from reelstream.ingest.metadata import id_problem
from reelstream.ingest.ratings import minimum_age
from reelstream.processors.catalog.logic import PUBLISHED, TITLES
from reelstream.runtime import Runtime
from reelstream.web.posters import poster_key

WEB_DIR = Path(__file__).resolve().parent
# Where `npm ci` in the repository's web/ puts it; an installed package (the image) has no
# repository around it, and names the folder in REEL_SHAKA_DIR.
SHAKA_DIST = WEB_DIR.parents[1] / "web" / "node_modules" / "shaka-player" / "dist"
SHAKA_SCRIPT = "shaka-player.compiled.js"
log = logging.getLogger(__name__)
RUNTIME = web.AppKey("runtime", Runtime)
# Shown when a title has no poster yet: a plain SVG frame, no network.
PLACEHOLDER = ('<svg xmlns="http://www.w3.org/2000/svg" width="320" height="180"><rect width="100%" height="100%" '
               'fill="#222"/><text x="50%" y="50%" fill="#888" text-anchor="middle" font-family="sans-serif">'
               'no poster</text></svg>')


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def catalog(request: web.Request) -> web.Response:
    state = request.app[RUNTIME].state
    titles = []
    for row in state.scan(TITLES):
        v = row.values
        if v.get("status") != PUBLISHED:
            continue
        meta = v.get("metadata") or {}
        rating = meta.get("rating") or {}
        rated = bool(rating.get("system") and rating.get("value"))
        titles.append({"title_id": v["title_id"], "title": v.get("title") or v["title_id"],
                       # The age band the manifest gateway holds profiles to (policy.maturity_problem),
                       # so the page can say which titles the active profile cannot open.
                       "rating": {"system": rating["system"], "value": rating["value"]} if rated else None,
                       "min_age": minimum_age(rating.get("system"), rating.get("value")),
                       "genres": meta.get("genres", []), "audio_languages": meta.get("audio_languages", []),
                       "offline": bool((meta.get("license_terms") or {}).get("offline_download_allowed")),
                       "poster": f"posters/{v['title_id']}.jpg"})
    titles.sort(key=lambda t: t["title"])
    return web.json_response({"titles": titles}, headers={"Cache-Control": "no-cache"})


async def poster(request: web.Request) -> web.Response:
    objects = request.app[RUNTIME].objects
    title_id = request.match_info["title_id"]
    if (problem := id_problem(title_id)) is not None:
        # The route's segment arrives percent-decoded ('..%2F' is '../'): the store refused
        # such a key with a 503 and a logged traceback per request, for anyone to repeat.
        raise NotFound(f"no poster: the title id {problem}")
    try:
        body = objects.get(poster_key(title_id))
    except ObjectNotFound:
        return web.Response(text=PLACEHOLDER, content_type="image/svg+xml")
    return web.Response(body=body, content_type="image/jpeg", headers={"Cache-Control": "public, max-age=300"})


def shaka_dist() -> Path:
    """The folder served at /web/shaka/: REEL_SHAKA_DIR, else the repository's web/node_modules."""
    setting = os.environ.get("REEL_SHAKA_DIR")
    return Path(setting) if setting else SHAKA_DIST


def web_app(runtime: Runtime) -> web.Application:
    app = web.Application()
    app[RUNTIME] = runtime
    app.router.add_get("/", index)
    app.router.add_get("/api/catalog", catalog)
    app.router.add_get("/posters/{title_id}.jpg", poster)
    shaka = shaka_dist()
    if (shaka / SHAKA_SCRIPT).is_file():
        app.router.add_static("/shaka/", shaka)
    else:
        # The page still lists the catalog; it cannot play. Said once, at start, with the fix.
        log.warning("the web page cannot play: no Shaka Player at %s (run `cd web && npm ci` in the repository, "
                    "or set REEL_SHAKA_DIR to a folder holding %s)", shaka, SHAKA_SCRIPT)
    app.router.add_static("/static/", WEB_DIR)
    return app
