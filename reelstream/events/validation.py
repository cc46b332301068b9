"""Produce-time validation that names the offending field by its path in the event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastavro.validation import validate as fastavro_validate

_PRIMITIVE_CHECKS = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31,
    "long": lambda v: isinstance(v, (int, datetime)) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bytes": lambda v: isinstance(v, (bytes, bytearray)),
    "string": lambda v: isinstance(v, str),
}


def first_violation(schema: Any, datum: Any) -> tuple[str, str] | None:
    """Return ``(field path, message)`` for the first field that does not match, else None.

    ``schema`` is the raw (JSON) schema with named types inlined at first use.
    """
    return _walk(schema, datum, "", {})


def is_valid(parsed_schema: Any, datum: Any) -> bool:
    return bool(fastavro_validate(datum, parsed_schema, raise_errors=False))


def _walk(schema: Any, datum: Any, path: str, named: dict[str, Any]) -> tuple[str, str] | None:
    if isinstance(schema, list):
        return _walk_union(schema, datum, path, named)
    if isinstance(schema, str):
        if schema in named:
            return _walk(named[schema], datum, path, named)
        check = _PRIMITIVE_CHECKS.get(schema)
        if check is None or check(datum):
            return None
        return path or "<event>", f"expected {schema}, got {type(datum).__name__} {datum!r:.60}"
    kind = schema.get("type")
    if kind == "record":
        named[schema["name"]] = schema
        named[f"{schema.get('namespace', '')}.{schema['name']}"] = schema
        if not isinstance(datum, dict):
            return path or "<event>", f"expected a record, got {type(datum).__name__}"
        for fld in schema["fields"]:
            sub = f"{path}.{fld['name']}" if path else fld["name"]
            if fld["name"] not in datum and "default" in fld:
                continue
            if fld["name"] not in datum:
                return sub, "is required but missing"
            found = _walk(fld["type"], datum[fld["name"]], sub, named)
            if found:
                return found
        unknown = set(datum) - {f["name"] for f in schema["fields"]}
        if unknown:
            return f"{path + '.' if path else ''}{min(unknown)}", "is not a field of this event"
        return None
    if kind == "enum":
        named[schema["name"]] = schema
        if datum in schema["symbols"]:
            return None
        return path, f"{datum!r} is not one of {', '.join(schema['symbols'])}"
    if kind == "array":
        if not isinstance(datum, (list, tuple)):
            return path, f"expected a list, got {type(datum).__name__}"
        for i, item in enumerate(datum):
            found = _walk(schema["items"], item, f"{path}[{i}]", named)
            if found:
                return found
        return None
    if kind == "map":
        if not isinstance(datum, dict):
            return path, f"expected a map, got {type(datum).__name__}"
        for k, item in datum.items():
            found = _walk(schema["values"], item, f"{path}[{k!r}]", named)
            if found:
                return found
        return None
    return _walk(kind, datum, path, named)


def _walk_union(branches: list[Any], datum: Any, path: str, named: dict[str, Any]) -> tuple[str, str] | None:
    failures = [_walk(b, datum, path, named) for b in branches]
    if any(f is None for f in failures):
        return None
    deepest = max(failures, key=lambda f: len(f[0]) if f else 0)
    return deepest
