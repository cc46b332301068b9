"""The origin the PoP tier fills from: packaged objects straight from the ObjectStore
(a local directory or S3: the same code), and the static parts of manifests rendered
from ``package.json`` with relative segment URLs.

- Segments and init segments are immutable (a package id is never reused), so they go
  out with a year's ``Cache-Control: immutable``; playlists and MPDs are short-lived with
  ``stale-while-revalidate`` so the edges refresh them in the background.
- ``ETag`` is the object's SHA-256 (both stores keep it); ``If-None-Match`` answers 304.
- ``Range: bytes=a-b`` answers 206 with ``Content-Range`` (RFC 9110 §14), read with the
  store's ``get_range`` so S3 serves only those bytes.

The origin trusts its network (PoPs reach it on a private address); viewers never do:
the edges verify the signed URLs. Without cache tiers (``reel edge up --origin-only``, the
compose file's ``origin``) viewers do reach it: given the edge secret it verifies the
signed URLs itself, as nginx would, and serves nothing unsigned.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import lru_cache

from aiohttp import web

from reelstream.edge.signing import EdgeSecret, SignedUrlExpired, SignedUrlRefused, verify
from reelstream.errors import ObjectNotFound
from reelstream.media.package import dash, hls
from reelstream.media.package.model import Package
from reelstream.stores.ports import ObjectStore

OBJECTS = web.AppKey("objects", ObjectStore)
SECRET = web.AppKey("edge_secret", EdgeSecret)
KEY_URLS: web.AppKey[Callable[[Package], hls.UrlBuilder]] = web.AppKey("key_urls")
PROFILES: dict[str, hls.DeviceProfile] = {hls.CHROMIUM_CLEARKEY.name: hls.CHROMIUM_CLEARKEY}
IMMUTABLE = "public, max-age=31536000, immutable"
CONTENT_TYPES = {".m4s": "video/mp4", ".mp4": "video/mp4", ".m4a": "audio/mp4", ".vtt": "text/vtt",
                 ".json": "application/json", ".jpg": "image/jpeg", ".mpd": "application/dash+xml",
                 ".m3u8": "application/vnd.apple.mpegurl"}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def manifest_cache_control(max_age_s: int = 2, stale_s: int = 300) -> str:
    return f"public, max-age={max_age_s}, stale-while-revalidate={stale_s}"


def content_type(key: str) -> str:
    return CONTENT_TYPES.get(key[key.rfind("."):], "application/octet-stream")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive of a single-range ``Range`` header, None when absent;
    ValueError when unsatisfiable (416)."""
    match = _RANGE.match(header.strip())
    if not match or (not match[1] and not match[2]):
        raise ValueError(f"unsupported Range {header!r}: one 'bytes=a-b' range only")
    if not match[1]:  # suffix range: the last N bytes
        start, end = max(0, size - int(match[2])), size - 1
    else:
        start, end = int(match[1]), min(int(match[2]) if match[2] else size - 1, size - 1)
    if start > end or start >= size:
        raise ValueError(f"Range {header!r} is outside the {size}-byte object")
    return start, end


def default_key_urls(license_base: str) -> Callable[[Package], hls.UrlBuilder]:
    """Media playlists name the license server's HLS key URI; segments stay relative."""
    def build(package: Package) -> hls.UrlBuilder:
        return hls.UrlBuilder(media_base="../../", clearkey_license=f"{license_base}/clearkey/{package.title_id}",
                              clearkey_key=f"{license_base}/keys/{package.title_id}/{{key_id}}")
    return build


async def serve_object(request: web.Request) -> web.StreamResponse:
    return await _serve(request, "packages/" + request.match_info["key"])


async def serve_signed_object(request: web.Request) -> web.StreamResponse:
    """``/s/{token}/{expires}/packages/...``, verified as the edges' nginx verifies it: 403
    forged or malformed, 410 expired."""
    try:
        path = verify(request.app[SECRET], request.path, time.time())
    except SignedUrlExpired as e:
        raise web.HTTPGone(text=str(e)) from None
    except SignedUrlRefused as e:
        raise web.HTTPForbidden(text=str(e)) from None
    return await _serve(request, path.lstrip("/"))


async def _serve(request: web.Request, key: str) -> web.StreamResponse:
    objects = request.app[OBJECTS]
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        # A folder (trailing '/') or a dot segment names no object; the store would refuse the key.
        raise web.HTTPNotFound(text=f"no object {key}")
    try:
        info = objects.head(key)
    except ObjectNotFound:
        raise web.HTTPNotFound(text=f"no object {key}") from None
    etag = f'"{info.sha256 or info.etag}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes",
               "Content-Type": content_type(key)}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    if (range_header := request.headers.get("Range")) is not None:
        try:
            start, end = parse_range(range_header, info.size)  # type: ignore[misc]
        except ValueError as e:
            raise web.HTTPRequestRangeNotSatisfiable(text=str(e), headers={"Content-Range": f"bytes */{info.size}"})
        body = b"" if request.method == "HEAD" else objects.get_range(key, start, end)
        return web.Response(status=206, body=body, headers={
            **headers, "Content-Range": f"bytes {start}-{end}/{info.size}", "Content-Length": str(end - start + 1)})
    if request.method == "HEAD":
        return web.Response(headers={**headers, "Content-Length": str(info.size)})
    return web.Response(body=objects.get(key), headers=headers)


@lru_cache(maxsize=256)
def _package(objects: ObjectStore, prefix: str) -> Package:
    # A published package.json never changes (the package id is new for every packaging run).
    return Package.from_json(objects.get(prefix + "package.json").decode())


async def serve_manifest(request: web.Request) -> web.Response:
    m = request.match_info
    prefix = f"packages/{m['title']}/{m['package']}/"
    profile = PROFILES.get(m["profile"])
    if profile is None:
        raise web.HTTPNotFound(text=f"unknown device profile {m['profile']!r}; known: {', '.join(PROFILES)}")
    try:
        package = _package(request.app[OBJECTS], prefix)
    except ObjectNotFound:
        raise web.HTTPNotFound(text=f"no package at {prefix}") from None
    urls = request.app[KEY_URLS](package)
    name = m["name"]
    try:
        if m["format"] == "dash" and name == "manifest.mpd":
            body = dash.mpd(package, profile, urls)
        elif m["format"] == "hls" and name == "master.m3u8":
            body = hls.multivariant_playlist(package, profile, urls)
        elif m["format"] == "hls" and name.endswith(".m3u8"):
            body = hls.media_playlist(package, name.removesuffix(".m3u8"), profile, urls)
        else:
            raise web.HTTPNotFound(text=f"no manifest {name}")
    except hls.NothingPlayable as e:  # a track this device profile is not offered: not found for it
        raise web.HTTPNotFound(text=str(e)) from None
    return web.Response(body=body.encode(), headers={"Content-Type": content_type(name),
                                                     "Cache-Control": manifest_cache_control()})


def origin_app(objects: ObjectStore, license_base: str = "/license", secret: EdgeSecret | None = None
               ) -> web.Application:
    """The origin: ``/packages/{title}/{package}/{key}`` objects, and rendered manifests at
    ``/packages/{title}/{package}/{dash|hls}/{profile}/{name}`` (segment URLs relative, so
    they inherit the signed prefix of the manifest's own URL at the edge).

    With ``secret`` it faces viewers (no cache tiers in front): objects only at the signed
    URLs the gateways hand out, ``/s/{token}/{expires}/packages/...``. Without it those URLs
    were a 404 (nothing played) and every title's objects were a plain GET away."""
    app = web.Application()
    app[OBJECTS] = objects
    app[KEY_URLS] = default_key_urls(license_base)
    if secret is not None:
        app[SECRET] = secret
        app.router.add_get("/s/{signed:.+}", serve_signed_object)  # HEAD is added with GET
    else:
        app.router.add_get(r"/packages/{title}/{package}/{format:dash|hls}/{profile}/{name}", serve_manifest)
        app.router.add_get("/packages/{key:.+}", serve_object)
    app.router.add_get("/healthz", healthz)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")
