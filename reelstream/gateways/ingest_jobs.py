"""The ingest gateway's record of each title's latest ingest on this server: its state, the
step it is on and its files' bytes hashed and uploaded (it is the ingest's progress sink),
while it validates how far its media commands have read the master, then its plan, its
rejection reasons or its failure. Kept in memory: the events on the log
are the durable record, and this is what a studio tool polls while its ingest runs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reelstream.errors import ReelStreamError
from reelstream.ingest.reasons import IngestRejected
from reelstream.ingest.service import IngestResult
from reelstream.media.reading import reading

State = Literal["running", "ingested", "rejected", "failed"]
STATES: tuple[State, ...] = ("running", "ingested", "rejected", "failed")


@dataclass
class IngestJob:
    title_id: str
    state: State = "running"
    doing: str = "starting"
    files: dict[str, dict[str, int]] = field(default_factory=dict)  # name -> hashed, uploaded, size
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    ended_ms: int | None = None
    result: dict[str, Any] | None = None
    reasons: list[dict[str, Any]] | None = None
    error: str | None = None
    transient: bool = False  # a failure that a retry may get past (a store that was down)
    source: Path | None = None  # the file the current step's media commands read through

    # IngestProgress, called from the ingest's thread: each call replaces one small value.
    def hashing(self, name: str, done: int, total: int) -> None:
        self._file(name, total)["hashed"] = done

    def uploading(self, name: str, done: int, total: int) -> None:
        self._file(name, total)["uploaded"] = done

    def step(self, message: str, reading: Path | None = None) -> None:
        self.doing, self.source = message, reading

    def _file(self, name: str, total: int) -> dict[str, int]:
        return self.files.setdefault(name, {"hashed": 0, "uploaded": 0, "size": total})

    def ingested(self, result: IngestResult) -> None:
        self.result = {"title_id": result.title_id, "master_key": result.master_key, "renditions": result.renditions,
                       "chunk_count": result.chunk_count, "jobs": result.jobs}
        self._end("ingested", "transcode jobs published")

    def rejected(self, error: IngestRejected) -> None:
        self.reasons = [r.to_avro() for r in error.reasons]
        self._end("rejected", "rejected; the files stay staged for a corrected post")

    def failed(self, error: BaseException) -> None:
        if isinstance(error, ReelStreamError):
            self.transient = error.transient
            self.error = f"{error} ({'retry shortly' if error.transient else 'retrying will not help'})"
        else:
            self.error = "internal error; the server's log says what"
        self._end("failed", "failed")

    def _end(self, state: State, step: str) -> None:
        self.state, self.doing, self.ended_ms, self.source = state, step, int(time.time() * 1000), None

    def _reading(self) -> dict[str, Any] | None:
        """How far into the step's file a media command has read (ffprobe has no progress of its
        own); None between commands, or in a step that reads no file."""
        source = self.source
        if source is None or (now := reading(source)) is None:
            return None
        try:
            size = source.stat().st_size
        except OSError:
            return None
        return {"file": source.name, "done": now.position, "size": size}

    def status(self) -> dict[str, Any]:
        return {"title_id": self.title_id, "state": self.state, "step": self.doing,
                "files": self.files, "reading": self._reading(), "started_ms": self.started_ms, "ended_ms": self.ended_ms,
                "result": self.result, "reasons": self.reasons, "error": self.error}
