"""HTTP for the player: one aiohttp session, every request timed, errors made specific.

The gateways want ``Authorization: Bearer`` (device-bound token) and, behind a trusted
proxy, a country header; the edges want nothing but the signed URL. Every request's
wall time is returned with its body, so the session can put it on the virtual clock
and the load generator can report latencies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from reelstream.player.client.errors import RequestFailed


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]
    elapsed_s: float

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Http:
    """Timed requests; ``headers`` go on every request to the gateways (not the edges)."""

    def __init__(self, session: aiohttp.ClientSession, gateway_headers: dict[str, str] | None = None,
                 timeout_s: float = 30.0) -> None:
        self.session = session
        self.gateway_headers = gateway_headers or {}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def request(self, what: str, method: str, url: str, *, token: str | None = None,
                      json: Any = None, data: bytes | None = None, headers: dict[str, str] | None = None,
                      gateway: bool = True, ok: tuple[int, ...] = (200,)) -> Reply:
        """``what`` names the request in errors ("license", "segment 3 of h264-360p")."""
        sent = {**(self.gateway_headers if gateway else {}), **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        start = time.perf_counter()
        try:
            async with self.session.request(method, url, json=json, data=data, headers=sent,
                                            timeout=self.timeout) as response:
                body = await response.read()
                reply = Reply(response.status, body, dict(response.headers), time.perf_counter() - start)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise RequestFailed(what, url, 0, f"{type(e).__name__}: {e}", time.perf_counter() - start) from e
        if reply.status not in ok:
            raise RequestFailed(what, url, reply.status, body.decode("utf-8", "replace"), reply.elapsed_s)
        return reply


def rebase(url: str, edge: str | None) -> str:
    """``url`` on another edge (``scheme://host:port``), path and query kept: signed edge
    URLs sign the path, so any tier that shares the secret accepts them."""
    if not edge:
        return url
    target, parts = urlsplit(edge), urlsplit(url)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, parts.fragment))
