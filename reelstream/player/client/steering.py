"""Content steering, client side: poll the steering server at its TTL and move the
session's next segments to the pathway it ranks first.

The steering manifest is the JSON shared by HLS (draft-pantos-hls-rfc8216bis §7.2) and
DASH (DASH-IF Content Steering)::

    {"VERSION": 1, "TTL": 10, "RELOAD-URI": "...", "PATHWAY-PRIORITY": ["pop-1", "appliance-isp-a"]}

What a client does with it, and what this module does:

- every request names the pathway in use and the measured throughput (bit/s): DASH
  ``_DASH_pathway``/``_DASH_throughput``, HLS ``_HLS_pathway``/``_HLS_throughput``;
- the next request goes to ``RELOAD-URI`` (resolved against the URI just asked) after
  ``TTL`` seconds (on the player's virtual clock);
- the pathway is the first of ``PATHWAY-PRIORITY`` that the manifest offers; a list that
  names none of them keeps the current one;
- a segment that fails on the pathway in use (5xx, no answer, timeout) is fetched again
  on the next pathway of the last ``PATHWAY-PRIORITY`` (the manifest's order before any
  answer), and the session stays there until the next answer moves it
  (the failover the steering list exists for; it is counted in ``Decision.failovers``);
- a failed request (no answer, an error status, a body that is not a steering manifest)
  keeps the current pathway and is retried after the last TTL (300 s before any TTL
  was given, rfc8216bis' default); 410 Gone stops polling for the session (§7.2.1);
  429 with ``Retry-After`` waits that long.

``parse_manifest``, ``request_url``, ``choose`` and ``fallback`` are pure; :class:`Steerer` keeps the
per-session state (where to ask next, and when) and records every poll.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from reelstream.player.client.errors import SteeringInvalid
from reelstream.player.client.presentation import Steering

DEFAULT_TTL_S = 300.0  # rfc8216bis §7.2: a client without a TTL waits 300 s


@dataclass(frozen=True)
class SteeringManifest:
    """One answer of the steering server (rfc8216bis §7.2.1 / DASH-IF CS §4.3)."""

    version: int
    ttl_s: float
    reload_uri: str | None
    priority: tuple[str, ...]


def parse_manifest(body: bytes, url: str) -> SteeringManifest:
    """A steering manifest; SteeringInvalid names the field at fault."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise SteeringInvalid(f"{url}: the steering manifest is not JSON: {e}") from e
    if not isinstance(data, dict):
        raise SteeringInvalid(f"{url}: the steering manifest is not a JSON object")
    if data.get("VERSION") != 1:
        raise SteeringInvalid(f"{url}: steering manifest VERSION {data.get('VERSION')!r}; only 1 is defined")
    ttl = data.get("TTL")
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        raise SteeringInvalid(f"{url}: steering manifest TTL {ttl!r} is not a positive number of seconds")
    priority = data.get("PATHWAY-PRIORITY")
    if not isinstance(priority, list) or not priority or not all(isinstance(p, str) and p for p in priority):
        raise SteeringInvalid(f"{url}: steering manifest PATHWAY-PRIORITY {priority!r} is not a list of pathway ids")
    reload_uri = data.get("RELOAD-URI")
    if reload_uri is not None and not isinstance(reload_uri, str):
        raise SteeringInvalid(f"{url}: steering manifest RELOAD-URI {reload_uri!r} is not a string")
    return SteeringManifest(1, float(ttl), urljoin(url, reload_uri) if reload_uri else None, tuple(priority))


def request_url(uri: str, fmt: Literal["dash", "hls"], pathway: str, throughput_bps: float | None) -> str:
    """``uri`` with the client's query parameters (replacing any it already carries)."""
    prefix = "_DASH_" if fmt == "dash" else "_HLS_"
    parts = urlsplit(uri)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith(prefix)]
    query.append((f"{prefix}pathway", pathway))
    if throughput_bps is not None:
        query.append((f"{prefix}throughput", str(round(throughput_bps))))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def choose(priority: Sequence[str], offered: Sequence[str], current: str) -> str:
    """The first pathway of ``priority`` the manifest offers; ``current`` if none is."""
    return next((p for p in priority if p in offered), current)


def fallback(priority: Sequence[str], offered: Sequence[str], failed: Collection[str]) -> str | None:
    """The pathway to fetch a failed segment from: the first of ``priority`` that the
    manifest offers and that has not failed for this segment; None when none is left
    (a pathway the steering server left out of its list is not used)."""
    return next((p for p in priority if p in offered and p not in failed), None)


@dataclass(frozen=True)
class Poll:
    """One request to the steering server, as the session report shows it."""

    at_s: float  # virtual time of the request
    url: str
    status: int  # HTTP status; 0 when there was no answer
    priority: tuple[str, ...] = ()
    pathway: str = ""  # the pathway in use after the answer
    error: str | None = None
    latency_s: float = 0.0  # real time the server took


@dataclass
class Steerer:
    """One session's steering client: when and where to ask next, and the pathway in use."""

    steering: Steering
    format: Literal["dash", "hls"]
    pathway: str = ""
    next_uri: str = ""
    due_s: float = 0.0
    ttl_s: float = DEFAULT_TTL_S
    stopped: bool = False
    priority: tuple[str, ...] = ()  # the last PATHWAY-PRIORITY; the manifest's order before any
    polls: list[Poll] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pathway = self.pathway or self.steering.default
        self.next_uri = self.next_uri or self.steering.server_uri
        default = self.steering.default
        self.priority = self.priority or (default, *(p for p in self.steering.pathways if p != default))

    def fallback(self, failed: Collection[str]) -> str | None:
        """Where to fetch a segment that failed on every pathway in ``failed``, or None;
        the session stays on the pathway returned until the next answer moves it."""
        pathway = fallback(self.priority, self.steering.pathways, failed)
        if pathway is not None:
            self.pathway = pathway  # the next poll reports the pathway really in use
        return pathway

    def stay(self, pathway: str, error: str) -> None:
        """The move the last answer asked for failed: the session stays on ``pathway``, and
        the last poll records why (the next one reports the pathway really in use)."""
        self.pathway = pathway
        if self.polls:
            self.polls[-1] = replace(self.polls[-1], pathway=pathway, error=error)

    def due(self, now_s: float) -> bool:
        return not self.stopped and now_s >= self.due_s

    def url(self, throughput_bps: float | None) -> str:
        return request_url(self.next_uri, self.format, self.pathway, throughput_bps)

    def answered(self, now_s: float, url: str, status: int, body: bytes, latency_s: float,
                 retry_after_s: float | None = None) -> str:
        """Take one answer (``status`` 0 and the error in ``body`` when there was none);
        returns the pathway to use now."""
        if status == 200:
            try:
                manifest = parse_manifest(body, url)
            except SteeringInvalid as e:
                return self._failed(now_s, url, status, str(e), latency_s)
            self.ttl_s = manifest.ttl_s
            self.next_uri = manifest.reload_uri or self.next_uri
            self.due_s = now_s + manifest.ttl_s
            self.priority = manifest.priority
            self.pathway = choose(manifest.priority, self.steering.pathways, self.pathway)
            self.polls.append(Poll(now_s, url, status, manifest.priority, self.pathway, None, latency_s))
            return self.pathway
        if status == 410:  # rfc8216bis §7.2.1: the server ended steering for this session
            self.stopped = True
        reason = body.decode("utf-8", "replace")[:200] or f"HTTP {status}"
        return self._failed(now_s, url, status, reason, latency_s, retry_after_s)

    def _failed(self, now_s: float, url: str, status: int, error: str, latency_s: float,
                retry_after_s: float | None = None) -> str:
        self.due_s = now_s + (retry_after_s if status == 429 and retry_after_s else self.ttl_s)
        self.polls.append(Poll(now_s, url, status, (), self.pathway, error, latency_s))
        return self.pathway
