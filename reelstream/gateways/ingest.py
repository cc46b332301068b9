"""The ingest endpoint: the same ingest as `reel ingest`, over HTTP, for studio tools.

Files go up resumably, one request per piece (like tus): ``HEAD`` says how many bytes
of a file the server has (``Upload-Offset``), ``PUT`` with ``Upload-Offset`` appends
from there. Then ``POST /titles/{title_id}/ingest`` with the metadata document runs the
ingest on the staged files: 201 with the plan, or 422 with every rejection reason.

    PUT  /titles/{title_id}/files/{name}     body: bytes; header Upload-Offset: N
    HEAD /titles/{title_id}/files/{name}     -> Upload-Offset
    POST /titles/{title_id}/ingest           body: title.json -> 201 | 422 {"reasons": [...]}
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from reelstream.errors import ReelStreamError
from reelstream.ingest.reasons import IngestRejected
from reelstream.ingest.service import IngestService
from reelstream.media.transcode.ladder import DEFAULT_LADDER, Rung
from reelstream.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
STAGING = web.AppKey("staging", Path)
LADDER = web.AppKey("ladder", tuple)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_TITLE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_PIECE = 1024 * 1024


def _staged(request: web.Request) -> Path:
    title, name = request.match_info["title_id"], request.match_info.get("name", "")
    if not _TITLE.match(title) or (name and not _NAME.match(name)):
        raise web.HTTPBadRequest(text="title id or file name not allowed (letters, digits, '.', '_', '-')")
    folder = request.app[STAGING] / title
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name if name else folder


async def head_file(request: web.Request) -> web.Response:
    path = _staged(request)
    size = path.stat().st_size if path.exists() else 0
    return web.Response(status=200, headers={"Upload-Offset": str(size)})


async def put_file(request: web.Request) -> web.Response:
    path = _staged(request)
    have = path.stat().st_size if path.exists() else 0
    try:
        offset = int(request.headers.get("Upload-Offset", "0"))
    except ValueError:
        raise web.HTTPBadRequest(text="Upload-Offset must be an integer") from None
    if offset != have:
        # The client resumes from what the server has, never from what it thinks it sent.
        raise web.HTTPConflict(text=f"the server has {have} bytes of {path.name}", headers={"Upload-Offset": str(have)})
    with path.open("r+b" if path.exists() else "wb") as out:
        out.seek(offset)
        while piece := await request.content.read(_PIECE):
            out.write(piece)
            offset += len(piece)
        out.truncate(offset)
    return web.Response(status=204, headers={"Upload-Offset": str(offset)})


async def post_ingest(request: web.Request) -> web.Response:
    folder = _staged(request)
    try:
        doc: Any = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="the body must be the title's metadata as JSON") from None
    if not isinstance(doc, dict) or doc.get("title_id") != request.match_info["title_id"]:
        raise web.HTTPBadRequest(text="the metadata's title_id must match the URL")
    master_name = (doc.get("master") or {}).get("file")
    if not isinstance(master_name, str) or not (folder / master_name).is_file():
        raise web.HTTPBadRequest(text="metadata master.file must name an uploaded file")
    metadata = folder / "title.json"
    metadata.write_text(json.dumps(doc))
    service = IngestService(request.app[RUNTIME], request.app[LADDER])
    result = await asyncio.to_thread(service.ingest, folder / master_name, metadata)
    return web.json_response({"title_id": result.title_id, "master_key": result.master_key,
                              "renditions": result.renditions, "chunk_count": result.chunk_count,
                              "jobs": result.jobs}, status=201)


@web.middleware
async def errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                 ) -> web.StreamResponse:
    try:
        return await handler(request)
    except IngestRejected as e:
        return web.json_response({"title_id": e.title_id, "reasons": [r.to_avro() for r in e.reasons]}, status=422)
    except ReelStreamError as e:
        return web.json_response({"error": str(e)}, status=400)


def setup_routes(app: web.Application) -> None:
    app.router.add_route("HEAD", "/titles/{title_id}/files/{name}", head_file)
    app.router.add_put("/titles/{title_id}/files/{name}", put_file)
    app.router.add_post("/titles/{title_id}/ingest", post_ingest)


def create_app(runtime: Runtime, staging: Path, ladder: tuple[Rung, ...] = DEFAULT_LADDER) -> web.Application:
    app = web.Application(middlewares=[errors], client_max_size=1024 ** 4)
    app[RUNTIME], app[STAGING], app[LADDER] = runtime, staging, ladder

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        app[RUNTIME].close()

    app.cleanup_ctx.append(runtime_ctx)
    setup_routes(app)
    return app
