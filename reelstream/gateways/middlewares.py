"""The one error middleware: ReelStream errors to JSON responses with a status and a
message that says what was wrong; anything unexpected to a logged 500 without details."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from reelstream.errors import (
    EventLogError,
    ObjectStoreError,
    ReelStreamError,
    SchemaViolation,
    StateStoreError,
)
from reelstream.gateways import errors as g
from reelstream.gateways.drm import InvalidLicenseRequest
from reelstream.gateways.widevine import VendorLicenseError
from reelstream.identity.accounts import (
    AccountExists,
    AuthenticationFailed,
    DeviceLimitReached,
    InvalidIdentityInput,
    UnknownDevice,
    UnknownProfile,
)
from reelstream.identity.tokens import TokenInvalid
from reelstream.media.package.hls import NothingPlayable, UnknownTrack

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides.
STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (g.BadRequest, 400), (InvalidLicenseRequest, 400), (InvalidIdentityInput, 400), (SchemaViolation, 400),
    (g.Unauthorized, 401), (TokenInvalid, 401), (AuthenticationFailed, 401),
    (UnknownTrack, 404),
    (g.Refused, 403), (g.Forbidden, 403), (UnknownDevice, 403), (NothingPlayable, 403),
    (g.NotFound, 404), (UnknownProfile, 404),
    (g.Conflict, 409), (AccountExists, 409), (DeviceLimitReached, 409),
    (VendorLicenseError, 502),
    (EventLogError, 503), (StateStoreError, 503), (ObjectStoreError, 503),
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status_of(error: BaseException) -> int:
    return next((status for cls, status in STATUS if isinstance(error, cls)), 500)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        message = e.text if e.text and not e.text.startswith(f"{e.status}:") else e.reason
        if e.status == 413:
            message = f"the request body is larger than {request.app._client_max_size} bytes"
        return web.json_response({"error": message}, status=e.status, headers=_allow(e))
    except g.Busy as e:  # this instance's own limit, not a failed backend: the client can act on the message
        return web.json_response({"error": str(e)}, status=503, headers={"Retry-After": str(e.retry_after_s)})
    except g.TooManyAttempts as e:
        return web.json_response({"error": str(e)}, status=429, headers={"Retry-After": str(e.retry_after_s)})
    except ReelStreamError as e:
        status = status_of(e)
        if status == 502:  # a vendor service failed: its status is safe and useful to show
            log.warning("%s %s: %s", request.method, loggable_path(request), e)
            body = {"error": str(e)}
        elif status >= 500:
            log.exception("%s %s failed", request.method, loggable_path(request))
            body = {"error": f"a backing service failed ({type(e).__name__}); "
                             + ("retry shortly" if e.transient else "retrying will not help: the operator must "
                                "fix the server's configuration (its log says what)")}
        else:
            body = {"error": str(e)}
            if isinstance(e, g.Refused):
                body["reason"] = e.reason
        headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
        return web.json_response(body, status=status, headers=headers)
    except Exception:
        log.exception("%s %s failed unexpectedly", request.method, loggable_path(request))
        return web.json_response({"error": "internal error; it has been logged"}, status=500)


def loggable_path(request: web.Request) -> str:
    """The path without the playback ticket some routes carry in it (``/manifests/t/{ticket}/``):
    a ticket is a bearer credential for hours (a download's for 30 days), and logs travel
    further than the gateways do."""
    ticket = request.match_info.get("ticket")
    return request.path.replace(ticket, "<ticket>") if ticket else request.path


def _allow(e: web.HTTPException) -> dict[str, str] | None:
    allow = e.headers.get("Allow") if e.headers else None
    return {"Allow": allow} if allow else None
