"""Signed segment URLs the edge verifies on its own (nginx ``secure_link``), no call back.

The manifest gateway signs a *path prefix*, the title's scope ``/packages/{title}/``
(the gateway's ``reelstream.gateways.signing`` uses the same scope and formula), with an
expiry, so one token covers every segment a DASH ``SegmentTemplate`` or an HLS media
playlist names, and relative URLs inherit it. The URL carries the token and the expiry
as path segments in front of the object path::

    /s/{token}/{expires}/packages/{title}/{package}/{track}/seg-00001.m4s

    token = base64url_nopad( MD5( f"{expires}{scope} {secret}" ) )

which is exactly what nginx computes for ``secure_link $token,$expires;`` and
``secure_link_md5 "$expires$prefix $secret";`` (ngx_http_secure_link_module: the MD5
is compared base64url-decoded, padding optional; ``$secure_link`` is "" when the hash
does not match and "0" when ``expires`` has passed). MD5 is what the module offers; the
secret is 32 random bytes, never in a URL, and tokens live minutes, so a forgery needs a
second-preimage on MD5 within the expiry, which is not known to be feasible.

Cache keys are the object path after the signature, so every viewer's token hits the
same cache entry. ``verify`` is the same check in Python (the gateway's tests and the
steering server use it); both sides agree because both are tested against nginx.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from reelstream.errors import ReelStreamError

SIGNED_PREFIX = "/s/"
# The signed unit: one title's folder (every package, track, playlist and init segment of it).
TITLE_SCOPE = re.compile(r"^/packages/[A-Za-z0-9._-]+/")
SIGNED_PATH = re.compile(r"^/s/(?P<token>[A-Za-z0-9_-]{22})/(?P<expires>\d{1,12})(?P<prefix>/packages/[A-Za-z0-9._-]+/)"
                         r"(?P<rest>[A-Za-z0-9._/-]*)$")


class SignedUrlRefused(ReelStreamError):
    """A signed URL is malformed, tampered with (hash mismatch) or expired; the edge answers 403/410."""


class SignedUrlExpired(SignedUrlRefused):
    """The signed URL's expiry has passed: the player must fetch a fresh manifest (410 at the edge)."""


@dataclass(frozen=True)
class EdgeSecret:
    """The secret shared by the manifest gateway (signs) and every edge node (verifies)."""

    value: str  # printable ASCII without spaces, quotes, '$', ';', braces or '\\': it is written into nginx.conf

    def __post_init__(self) -> None:
        # 16 characters, as the gateway's REEL_EDGE_SECRET check asks.
        if len(self.value) < 16 or not re.fullmatch(r"[!#%&()*+,\-./0-9:<=>?@A-Z\[\]^_`a-z|~]+", self.value):
            raise ReelStreamError("REEL_EDGE_SECRET: at least 16 printable characters, none of space, quotes, "
                                  "'$', ';', braces or backslash (nginx.conf holds it)")

    def __repr__(self) -> str:
        return "EdgeSecret(<redacted>)"


def token(secret: EdgeSecret, prefix: str, expires: int) -> str:
    if not TITLE_SCOPE.fullmatch(prefix):
        raise ReelStreamError(f"cannot sign {prefix!r}: a signed scope is one title, '/packages/TITLE/'")
    digest = hashlib.md5(f"{expires}{prefix} {secret.value}".encode(), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def signed_base(edge_base: str, secret: EdgeSecret, storage_prefix: str, expires: int) -> str:
    """The URL prefix a manifest puts in front of the package's relative keys:
    ``{edge_base}/s/{token}/{expires}/packages/T/P/`` (``storage_prefix`` is the
    package's ``packages/T/P/``; the signature covers ``/packages/T/``)."""
    path = "/" + storage_prefix.strip("/") + "/"
    scope = TITLE_SCOPE.match(path)
    if scope is None:
        raise ReelStreamError(f"{storage_prefix!r} is not under packages/TITLE/")
    return f"{edge_base.rstrip('/')}{SIGNED_PREFIX}{token(secret, scope[0], expires)}/{expires}{path}"


def verify(secret: EdgeSecret, path: str, now: float) -> str:
    """The object path (``/packages/T/P/...``) a signed ``path`` grants, or SignedUrlRefused."""
    match = SIGNED_PATH.match(path.split("?", 1)[0])
    if match is None or "/../" in path or path.endswith("/.."):
        raise SignedUrlRefused(f"{path[:80]!r} is not a signed package URL")
    expires = int(match["expires"])
    expected = token(secret, match["prefix"], expires)
    if not hmac.compare_digest(expected, match["token"]):
        raise SignedUrlRefused("the URL's signature does not match its path and expiry (tampered)")
    if expires < now:
        raise SignedUrlExpired(f"the URL expired at {expires}; fetch a fresh manifest")
    return match["prefix"] + match["rest"]
