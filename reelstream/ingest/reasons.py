"""Why an ingest was rejected: the machine-readable reasons carried on IngestRejected."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reelstream.errors import ReelStreamError

CODES = ("METADATA_INVALID", "CHECKSUM_MISMATCH", "TRUNCATED_UPLOAD", "PROBE_FAILED", "DECODE_FAILED",
         "LANGUAGE_MISMATCH", "DURATION_INVALID", "SUBTITLE_INVALID", "AUDIO_INVALID", "UNSUPPORTED_CODEC", "OTHER")


@dataclass(frozen=True)
class Reason:
    code: str  # one of CODES (the IngestRejectionCode enum)
    field: str | None
    message: str

    def to_avro(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"{self.code}" + (f" [{self.field}]" if self.field else "") + f": {self.message}"


class IngestRejected(ReelStreamError):
    """Validation failed; ``reasons`` lists every failed check. ``uploaded``: the files were
    stored before the checks failed (they are kept) rather than refused before any upload."""

    def __init__(self, title_id: str | None, reasons: Sequence[Reason], *, uploaded: bool = False) -> None:
        lines = "\n".join(f"  - {r}" for r in reasons)
        then = ("The uploaded files are kept; fix the problems and run `reel ingest` again "
                "(uploads resume, unchanged files are not sent twice)." if uploaded else
                "Nothing was uploaded or recorded; fix the problems and run `reel ingest` again.")
        super().__init__(f"ingest of {title_id or 'the title'} rejected:\n{lines}\n{then}")
        self.title_id = title_id
        self.reasons = list(reasons)
        self.uploaded = uploaded
