"""Segment URLs signed for the edge, in nginx ``secure_link_md5``'s format, so an nginx
edge verifies them with no call back to the origin or the gateways.

The formula (ngx_http_secure_link_module; ``expires`` in Unix seconds)::

    scope   = "/packages/{title_id}/"                    # every package of one title
    md5     = base64url_nopad( MD5( f"{expires}{scope} {secret}" ) )   # 22 characters
    url     = f"{edge_base}/s/{md5}/{expires}{scope}{package_id}/{object key in the package}"

One signature covers a whole title (the manifest's every segment, init and subtitle), is
useless for any other title, and stops working at ``expires``. The matching nginx
``location`` is ``nginx_location()`` below; ``verify`` is the same check in Python (for
test edges and the origin shield).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

_SIGNED = re.compile(r"^/s/(?P<md5>[A-Za-z0-9_-]{22})/(?P<expires>[0-9]{1,12})"
                     r"(?P<scope>/packages/[A-Za-z0-9._-]+/)(?P<rest>[A-Za-z0-9._/-]*)$")


def _md5(expires: int, scope: str, secret: str) -> str:
    digest = hashlib.md5(f"{expires}{scope} {secret}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def title_scope(title_id: str) -> str:
    return f"/packages/{title_id}/"


@dataclass(frozen=True)
class EdgeSigner:
    """Signs the media base URL of one manifest. ``secret`` is shared with the edge only."""

    edge_base: str  # e.g. "https://edge.example.net" (no trailing slash)
    secret: str
    ttl_s: int = 6 * 3600

    def media_base(self, storage_prefix: str, title_id: str, now_s: float) -> str:
        """The URL prefix for ``storage_prefix`` ("packages/{title}/{package}/")."""
        scope = title_scope(title_id)
        if not ("/" + storage_prefix).startswith(scope):
            raise ValueError(f"package prefix {storage_prefix!r} is outside the title's scope {scope!r}")
        expires = int(now_s) + self.ttl_s
        return f"{self.edge_base}/s/{_md5(expires, scope, self.secret)}/{expires}/{storage_prefix}"


@dataclass(frozen=True)
class Verified:
    object_key: str  # "packages/{title}/{package}/..." in the object store
    expires: int


class SignatureRejected(Exception):
    """A signed path is malformed (400), forged (403) or expired (410); ``status`` says which."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def verify(path: str, secret: str, now_s: float) -> Verified:
    """Check a request path the way the nginx location does."""
    match = _SIGNED.match(path)
    if match is None or ".." in path:
        raise SignatureRejected(400, "not a signed segment path")
    expires = int(match["expires"])
    if not hmac.compare_digest(match["md5"], _md5(expires, match["scope"], secret)):
        raise SignatureRejected(403, "the segment URL's signature does not match")
    if expires <= now_s:
        raise SignatureRejected(410, "the segment URL has expired; fetch the manifest again")
    return Verified(match["scope"].lstrip("/") + match["rest"], expires)


def nginx_location(secret_variable: str = "$reel_edge_secret", origin: str = "@origin") -> str:
    """The nginx location that verifies these URLs (secure_link answers "" bad, "0" expired)."""
    return (
        "location ~ ^/s/(?<sl_md5>[A-Za-z0-9_-]{22})/(?<sl_expires>[0-9]+)"
        "(?<sl_scope>/packages/[A-Za-z0-9._-]+/)(?<sl_rest>.*)$ {\n"
        "    secure_link $sl_md5,$sl_expires;\n"
        f'    secure_link_md5 "$sl_expires$sl_scope {secret_variable}";\n'
        '    if ($secure_link = "") { return 403; }\n'
        '    if ($secure_link = "0") { return 410; }\n'
        "    rewrite ^ $sl_scope$sl_rest break;\n"
        f"    try_files $uri {origin};\n"
        "}\n")
