"""What the gateways read about titles: studio terms from the catalog view and the
published ``Package`` (``package.json`` in the object store), cached in-process.

A package is immutable once published (a repackage gets a new package id), so packages
are cached by id for the life of the process; catalog rows for ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reelstream.errors import ObjectNotFound
from reelstream.gateways.errors import NotFound
from reelstream.gateways.policy import TitleTerms
from reelstream.keys.model import ContentKey
from reelstream.keys.service import KeyService
from reelstream.media.package.model import Package
from reelstream.processors.catalog.logic import EPISODES, PUBLISHED, TITLES
from reelstream.stores.ports import ObjectStore, StateStore


@dataclass(frozen=True)
class Title:
    title_id: str
    name: str
    terms: TitleTerms
    package: Package
    series: dict[str, Any] | None = None  # series_id, series_title, season, episode (TitleRegistered v3)
    end_credits_start_ms: int | None = None
    rating: tuple[str, str] | None = None  # (system, value), e.g. ("MPAA", "PG-13")

    @property
    def duration_ms(self) -> int:
        return int(self.package.duration_s * 1000)

    @property
    def key_classes(self) -> dict[str, str]:
        return {t.key_id: t.key_class for t in self.package.tracks if t.key_id and t.key_class}


class TitleCatalog:
    def __init__(self, state: StateStore, objects: ObjectStore, keys: KeyService | None = None,
                 clock: Callable[[], float] = time.monotonic, ttl_s: float = 30.0) -> None:
        self._state = state
        self._objects = objects
        self._keys = keys
        self._clock = clock
        self._ttl = ttl_s
        self._titles: dict[str, tuple[float, Title | None]] = {}
        self._packages: dict[str, Package] = {}
        self._content_keys: dict[tuple[str, str], ContentKey] = {}
        self._lock = threading.Lock()

    def title(self, title_id: str) -> Title:
        """The published title, or NotFound."""
        found = self.find(title_id)
        if found is None:
            raise NotFound(f"title {title_id!r} is not published")
        return found

    def peek(self, title_id: str) -> Title | None:
        """The cached published title, without I/O (None: not cached or stale)."""
        hit = self._titles.get(title_id)
        if hit is not None and self._clock() - hit[0] < self._ttl:
            return hit[1]
        return None

    def peek_key(self, title_id: str, kid: str) -> ContentKey | None:
        """The cached content key, without I/O."""
        return self._content_keys.get((title_id, kid))

    def find(self, title_id: str) -> Title | None:
        now = self._clock()
        hit = self._titles.get(title_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        title = self._load(title_id)
        if title is not None:  # misses are not cached: a title may be published any moment
            with self._lock:
                self._titles[title_id] = (now, title)
        return title

    def _load(self, title_id: str) -> Title | None:
        row = self._state.get(TITLES, (title_id,))
        if row is None or row.values["status"] != PUBLISHED or not row.values.get("metadata"):
            return None
        meta, pkg = row.values["metadata"], row.values["package"] or {}
        package_id = pkg.get("published_package_id")
        if not package_id:
            return None
        prefix = pkg["storage_prefix"] if pkg.get("package_id") == package_id else f"packages/{title_id}/{package_id}/"
        package = self._packages.get(package_id)
        if package is None:
            try:
                package = Package.from_json(self._objects.get(prefix + "package.json").decode())
            except ObjectNotFound:
                return None
            with self._lock:
                self._packages[package_id] = package
        t = meta["license_terms"]
        terms = TitleTerms(frozenset(t["territories"]), int(t["window_start"]),
                           int(t["window_end"]) if t.get("window_end") is not None else None,
                           bool(t["offline_download_allowed"]), int(t["max_height"]))
        rating = meta.get("rating") or {}
        return Title(title_id, row.values["title"] or title_id, terms, package, meta.get("series"),
                     meta.get("end_credits_start_ms"),
                     (rating["system"], rating["value"]) if rating.get("system") and rating.get("value") else None)

    def next_episode(self, title_id: str) -> str | None:
        """The published episode after ``title_id`` in its series (season, then episode
        order, across seasons), or None for a film, a finale or nothing published yet."""
        title = self.find(title_id)
        if title is None or title.series is None:
            return None
        here = (title.series["season"], title.series["episode"])
        for row in self._state.query(EPISODES, (title.series["series_id"],)):  # clustering order
            v = row.values
            if (v["season"], v["episode"]) > here and v["title_id"] != title_id and self.find(v["title_id"]):
                return str(v["title_id"])
        return None

    def content_key(self, title_id: str, kid: str) -> ContentKey:
        """The unwrapped content key, cached: keys never change once created."""
        if self._keys is None:
            raise NotFound("this gateway has no key service")
        cached = self._content_keys.get((title_id, kid))
        if cached is None:
            cached = self._keys.key_for_kid(title_id, kid)
            with self._lock:
                self._content_keys[(title_id, kid)] = cached
        return cached
