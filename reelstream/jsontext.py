"""JSON text that parses but is not valid Unicode.

``json.loads`` accepts an unpaired surrogate escape such as ``"\\ud800"`` (RFC 8259 §8.2
leaves it undefined) and returns a str that cannot be encoded as UTF-8: it then fails far
from its cause, in the state store, the event log or a token. Every door that takes JSON
from outside checks with :func:`lone_surrogate_at` and refuses the document there.
"""

from __future__ import annotations

import re
from typing import Any

_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")  # json.loads joins valid pairs, so any left is lone
LONE_SURROGATE_HINT = ("holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff): JSON strings must "
                       "be valid Unicode; escape characters beyond U+FFFF as a pair")


NESTED_TOO_DEEPLY = "the body is not valid JSON: nested too deeply"


def lone_surrogate_at(value: Any, path: str = "") -> str | None:
    """Where in ``value`` (a parsed JSON document) a string holds an unpaired surrogate, or None."""
    if isinstance(value, str):
        return f"field '{path}'" if _LONE_SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _LONE_SURROGATE.search(key):
                return f"a field name{f' in {path!r}' if path else ''}"
            if (where := lone_surrogate_at(item, f"{path}.{key}" if path else key)) is not None:
                return where
    elif isinstance(value, list):
        for n, item in enumerate(value):
            if (where := lone_surrogate_at(item, f"{path}[{n}]")) is not None:
                return where
    return None
