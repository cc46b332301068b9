"""The gateways' own errors. Each maps to one HTTP status in ``middlewares.errors``."""

from __future__ import annotations

from reelstream.errors import ReelStreamError


class GatewayError(ReelStreamError):
    """Root of the errors a gateway raises about a request."""


class BadRequest(GatewayError):
    """The request is malformed: not JSON, a field missing or of the wrong type (400)."""


class UnknownKeyId(BadRequest):
    """A license request names a key id the title's published package does not use (400)."""


class PositionOutOfRange(BadRequest):
    """A heartbeat reports a position beyond the title's duration, or negative (400)."""


class Unauthorized(GatewayError):
    """No token, or a token of the wrong kind for this route (401)."""


class Forbidden(GatewayError):
    """The caller is authenticated but may not do this (403)."""


class Refused(GatewayError):
    """A policy check refused the request; ``reason`` is the LicenseDenialReason symbol (403)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class NotFound(GatewayError):
    """The title, package, download or session does not exist (404)."""


class Conflict(GatewayError):
    """The request conflicts with work in progress on the same resource (409)."""


class Busy(GatewayError):
    """This gateway instance is taking as much of one kind of work as it allows (sign-ins
    waiting for password hashing): 503 with ``Retry-After``; another instance, or this one
    a moment later, answers."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TooManyAttempts(GatewayError):
    """Too many failed sign-ins for one email on this instance lately (429 with ``Retry-After``):
    a password is not guessed at scrypt's pace."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
