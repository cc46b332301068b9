"""A client for Confluent-compatible schema registries (the REST API's two calls the codec needs).

Used only when ``REEL_SCHEMA_REGISTRY_URL`` is set; otherwise events carry their
schema fingerprint and need no registry at all.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from reelstream.errors import SchemaError, SchemaRegistryUnavailable
from reelstream.events.registry import SchemaVersion

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class ConfluentSchemaRegistry:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._ids: dict[tuple[str, bytes], int] = {}
        self._schemas: dict[int, str] = {}
        self._lock = threading.Lock()

    def id_for(self, subject: str, schema: SchemaVersion) -> int:
        """Register (or look up) ``schema`` under ``subject``; cached per process."""
        key = (subject, schema.fingerprint)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        answer = self._call("POST", f"/subjects/{urllib.parse.quote(subject, safe='')}/versions",
                            {"schema": json.dumps(schema.resolved)})
        schema_id = int(answer["id"])
        with self._lock:
            self._ids[key] = schema_id
            self._schemas[schema_id] = json.dumps(schema.resolved)
        return schema_id

    def schema_for(self, schema_id: int) -> str:
        with self._lock:
            if schema_id in self._schemas:
                return self._schemas[schema_id]
        schema = str(self._call("GET", f"/schemas/ids/{schema_id}")["schema"])
        with self._lock:
            self._schemas[schema_id] = schema
        return schema

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": _CONTENT_TYPE, "Accept": _CONTENT_TYPE})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            message = f"schema registry {self.url} answered {e.code} to {method} {path}: {detail}"
            # A 5xx (or a 408/429) is the registry's bad moment; a 4xx is about what was asked
            # (an id it never gave, a schema it refuses), which asking again will not change.
            if e.code >= 500 or e.code in (408, 429):
                raise SchemaRegistryUnavailable(message) from e
            raise SchemaError(message) from e
        except (urllib.error.URLError, OSError) as e:
            raise SchemaRegistryUnavailable(f"schema registry {self.url} is unreachable: {e}") from e
        except ValueError as e:
            raise SchemaError(f"schema registry {self.url} answered garbage: {e}") from e
