"""The ingest gateway: the same ingest as `reel ingest`, over HTTP, for studio tools
(`reel ingest-server`).

Files go up resumably, one request per piece (like tus): ``HEAD`` says how many bytes
of a file the server has (``Upload-Offset``), ``PUT`` with ``Upload-Offset`` appends
from there. Then ``POST /titles/{title_id}/ingest`` with the metadata document runs the
ingest on the staged files: 201 with the plan (the staged files are then removed: origin
storage holds them), or 422 with every rejection reason (the files stay staged, so the
tool fixes the metadata or one file and posts again without sending the rest).

    PUT  /titles/{title_id}/files/{name}     body: bytes; header Upload-Offset: N
    HEAD /titles/{title_id}/files/{name}     -> Upload-Offset
    POST /titles/{title_id}/ingest           body: title.json -> 201 | 422 {"reasons": [...]}
    GET  /titles/{title_id}/ingest           -> the latest ingest's state, step and bytes

A master of many gigabytes takes minutes to hash, store and check: with ``Prefer:
respond-async`` (RFC 7240) the post answers 202 at once, and the tool polls the GET (the
``Location``) for its progress and outcome.

Studio tools are operators, not viewers: every request but ``/openapi.json`` carries
``Authorization: Bearer T`` with T one of the configured ingest tokens
(``REEL_INGEST_TOKENS``), and the server does not start without one. While a title's
ingest runs, its files cannot change and a second ingest of it is a 409.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from reelstream.errors import ConfigError
from reelstream.gateways.errors import BadRequest, Conflict, NotFound, Unauthorized
from reelstream.gateways.ingest_jobs import STATES, IngestJob
from reelstream.gateways.middlewares import errors
from reelstream.gateways.openapi import ID, INT, Route, add_routes, array, obj
from reelstream.ingest.reasons import IngestRejected
from reelstream.ingest.service import IngestService
from reelstream.media.transcode.ladder import DEFAULT_LADDER, Rung
from reelstream.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
STAGING = web.AppKey("staging", Path)
LADDER = web.AppKey("ladder", tuple)
TOKENS = web.AppKey("tokens", tuple)
JOBS: web.AppKey[dict[str, IngestJob]] = web.AppKey("jobs", dict)  # title id -> its latest ingest here
RUNNING: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("running", set)  # asynchronous ingests' tasks
WRITING: web.AppKey[set[Path]] = web.AppKey("writing", set)  # staged files a PUT is appending to
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_TITLE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_PIECE = 1024 * 1024
MAX_METADATA_BYTES = 1024 * 1024
MIN_TOKEN_CHARS = 24
log = logging.getLogger(__name__)


class IngestBusy(Conflict):
    """The title's ingest is running: its files cannot change and it cannot start twice (409)."""


def ingest_tokens(setting: str) -> tuple[str, ...]:
    """REEL_INGEST_TOKENS, a comma list; ConfigError naming the variable when unusable."""
    tokens = tuple(t.strip() for t in setting.split(",") if t.strip())
    if not tokens:
        raise ConfigError("REEL_INGEST_TOKENS: set at least one token (comma-separated) that studio tools send as "
                          "'Authorization: Bearer TOKEN'; `reel secrets` prints a generated one")
    if short := [t for t in tokens if len(t) < MIN_TOKEN_CHARS]:
        raise ConfigError(f"REEL_INGEST_TOKENS: {len(short)} token(s) shorter than {MIN_TOKEN_CHARS} characters; "
                          "use long random tokens (`reel secrets` prints one)")
    return tokens


def _staged(request: web.Request) -> Path:
    title, name = request.match_info["title_id"], request.match_info.get("name", "")
    if not _TITLE.match(title) or (name and not _NAME.match(name)):
        raise BadRequest("title id (a-z, 0-9, '.', '_', '-') or file name (letters, digits, '.', '_', '-') "
                         "not allowed")
    folder = request.app[STAGING] / title
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name if name else folder


def _idle(request: web.Request) -> None:
    job = request.app[JOBS].get(request.match_info["title_id"])
    if job is not None and job.state == "running":
        raise IngestBusy(f"title {job.title_id}'s ingest is running ({job.doing}); wait for its answer or poll "
                         f"GET /titles/{job.title_id}/ingest")


async def head_file(request: web.Request) -> web.Response:
    path = _staged(request)
    size = path.stat().st_size if path.exists() else 0
    return web.Response(status=200, headers={"Upload-Offset": str(size)})


async def put_file(request: web.Request) -> web.Response:
    path = _staged(request)
    _idle(request)
    have = path.stat().st_size if path.exists() else 0
    try:
        offset = int(request.headers.get("Upload-Offset", "0"))
    except ValueError:
        raise BadRequest("Upload-Offset must be an integer") from None
    if offset != have:
        # The client resumes from what the server has, never from what it thinks it sent.
        return web.json_response({"error": f"the server has {have} bytes of {path.name}; resume from there"},
                                 status=409, headers={"Upload-Offset": str(have)})
    writing = request.app[WRITING]
    if path in writing:  # two writers at one offset would interleave their bytes
        raise IngestBusy(f"another upload of {path.name} is in progress; resume once it ends (HEAD says where)")
    writing.add(path)
    try:
        with path.open("r+b" if path.exists() else "wb") as out:
            out.seek(offset)
            while piece := await request.content.read(_PIECE):
                out.write(piece)
                offset += len(piece)
            out.truncate(offset)
    finally:
        writing.discard(path)
    return web.Response(status=204, headers={"Upload-Offset": str(offset)})


async def _metadata(request: web.Request) -> dict[str, Any]:
    raw = b""
    while len(raw) <= MAX_METADATA_BYTES and (piece := await request.content.read(MAX_METADATA_BYTES + 1 - len(raw))):
        raw += piece
    if len(raw) > MAX_METADATA_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_METADATA_BYTES, actual_size=len(raw),
                                            text=f"the metadata document is over {MAX_METADATA_BYTES} bytes")
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise BadRequest("the body must be the title's metadata as JSON") from None
    if not isinstance(doc, dict) or doc.get("title_id") != request.match_info["title_id"]:
        raise BadRequest("the metadata's title_id must match the URL")
    return doc


async def post_ingest(request: web.Request) -> web.Response:
    folder = _staged(request)
    doc = await _metadata(request)
    master_name = (doc.get("master") or {}).get("file")
    if not isinstance(master_name, str) or not _NAME.match(master_name) or not (folder / master_name).is_file():
        raise BadRequest("metadata master.file must name an uploaded file")
    _idle(request)
    job = request.app[JOBS][folder.name] = IngestJob(folder.name)  # from here on the title is held
    metadata = folder / "title.json"
    metadata.write_text(json.dumps(doc))
    ingest = _run(request.app, job, folder / master_name, metadata)
    where = {"Location": request.path}  # GET it for the status
    if "respond-async" not in request.headers.get("Prefer", ""):
        await ingest
        return _outcome(job, where)
    task = asyncio.create_task(ingest)
    request.app[RUNNING].add(task)
    task.add_done_callback(request.app[RUNNING].discard)
    return web.json_response(job.status(), status=202, headers=where)


async def _run(app: web.Application, job: IngestJob, master: Path, metadata: Path) -> None:
    service = IngestService(app[RUNTIME], app[LADDER], progress=job)
    try:
        result = await asyncio.to_thread(service.ingest, master, metadata)
    except IngestRejected as e:  # the files stay staged for the corrected post
        job.rejected(e)
    except Exception as e:  # the job says it failed; the log has the rest
        log.exception("ingest of %s failed", job.title_id)
        job.failed(e)
    else:
        shutil.rmtree(master.parent, ignore_errors=True)  # origin storage holds them now
        job.ingested(result)


def _outcome(job: IngestJob, where: dict[str, str]) -> web.Response:
    if job.state == "ingested":
        return web.json_response(job.result, status=201, headers=where)
    if job.state == "rejected":
        return web.json_response({"title_id": job.title_id, "reasons": job.reasons}, status=422)
    return web.json_response({"error": job.error}, status=503 if job.transient else 500)


async def get_ingest(request: web.Request) -> web.Response:
    _staged(request)  # checks the title id
    job = request.app[JOBS].get(request.match_info["title_id"])
    if job is None:
        raise NotFound(f"no ingest of {request.match_info['title_id']} on this server since it started "
                       "(the title's events on the log say what happened before)")
    return web.json_response(job.status())


@web.middleware
async def authorized(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
    if request.path != "/openapi.json":
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not any(hmac.compare_digest(token.encode(), t.encode())
                                                 for t in request.app[TOKENS]):
            raise Unauthorized("send 'Authorization: Bearer TOKEN' with one of the ingest tokens "
                               "(REEL_INGEST_TOKENS on the server)")
    return await handler(request)


PLAN = obj(["title_id", "master_key", "renditions", "chunk_count", "jobs"], title_id=ID, master_key=ID,
           renditions=array(ID), chunk_count=INT, jobs=INT)
STATUS = obj(["title_id", "state", "step", "files", "started_ms", "ended_ms", "result", "reasons", "error"],
             title_id=ID, state={"type": "string", "enum": list(STATES)}, step={"type": "string"},
             files={"type": "object", "description": "'master', and each sidecar by its file name",
                    "additionalProperties": obj(["hashed", "uploaded", "size"], hashed=INT,
                                                                   uploaded=INT, size=INT)},
             reading={"type": ["object", "null"], "required": ["file", "done", "size"],
                      "description": "while a step's media command reads a file (validating the master: "
                                     "all of it), how far it has got",
                      "properties": {"file": ID, "done": INT, "size": INT}},
             started_ms=INT, ended_ms={"type": ["integer", "null"]}, result={**PLAN, "type": ["object", "null"]},
             reasons={"type": ["array", "null"], "items": {"type": "object"}}, error={"type": ["string", "null"]})
UPLOAD_OFFSET = {"Upload-Offset": "bytes of the file the server holds"}
REASON = obj(["code", "message"], code=ID, field={"type": ["string", "null"]}, message={"type": "string"})
ROUTES = (
    Route("HEAD", "/titles/{title_id}/files/{name}", head_file, "How many bytes of a staged file the server "
          "holds (0: none)", responses={200: "Upload-Offset says"}, produces=(), headers=UPLOAD_OFFSET),
    Route("PUT", "/titles/{title_id}/files/{name}", put_file, "Append to a staged file from Upload-Offset "
          "(0 starts it)", responses={204: "stored; Upload-Offset is the new size",
                                      409: "Upload-Offset is not what the server holds (the answer's "
                                           "Upload-Offset is), another upload of the file is in progress, "
                                           "or the title's ingest is running"},
          headers=UPLOAD_OFFSET),
    Route("POST", "/titles/{title_id}/ingest", post_ingest, "Ingest the staged files with this metadata "
          "(title.json): validated, stored in origin storage, transcode jobs published",
          responses={201: "ingested: the plan", 202: "with 'Prefer: respond-async': started; poll the Location",
                     409: "this title's ingest is running", 422: "rejected: every reason (the files stay staged)",
                     500: "the ingest failed unexpectedly (the server's log says why)",
                     503: "a backing store failed; retry shortly"},
          returns=PLAN, returns_by_status={202: STATUS}, headers={"Location": "the ingest's status (GET)"},
          rejects={422: obj(["title_id", "reasons"], title_id={"type": ["string", "null"]},
                            reasons=array(REASON))}),
    Route("GET", "/titles/{title_id}/ingest", get_ingest, "The title's latest ingest on this server: its state, "
          "the step it is on, each file's bytes hashed and uploaded, how far validation has read the master, "
          "then its plan, reasons or error",
          responses={200: "the ingest's status", 404: "no ingest of this title since the server started"},
          returns=STATUS),
)


def create_app(runtime: Runtime, staging: Path, tokens: Sequence[str],
               ladder: tuple[Rung, ...] = DEFAULT_LADDER) -> web.Application:
    # The body limit is the JSON parsers' (aiohttp's read()); pieces are streamed to disk.
    app = web.Application(middlewares=[errors, authorized], client_max_size=MAX_METADATA_BYTES)
    app[RUNTIME], app[STAGING], app[LADDER], app[TOKENS] = runtime, staging, ladder, tuple(tokens)
    app[JOBS] = {}
    app[RUNNING] = set()
    app[WRITING] = set()

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        running = app[RUNNING]
        if running:  # an ingest's thread cannot be cancelled: let it finish with the runtime open
            await asyncio.wait(list(running))
        app[RUNTIME].close()

    app.cleanup_ctx.append(runtime_ctx)
    add_routes(app, ROUTES, "ReelStream ingest gateway", __doc__ or "")
    return app
