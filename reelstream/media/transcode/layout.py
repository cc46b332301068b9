"""Object keys of a title: a contract with the packager, which reads chunks in index order."""

from __future__ import annotations


def master_key(title_id: str, filename: str) -> str:
    return f"titles/{title_id}/master/{filename}"


def sidecar_key(title_id: str, filename: str) -> str:
    return f"titles/{title_id}/sidecars/{filename}"


def chunk_prefix(title_id: str, rendition_id: str) -> str:
    return f"titles/{title_id}/renditions/{rendition_id}/chunks/"


def chunk_key(title_id: str, rendition_id: str, index: int) -> str:
    """A standalone MP4: IDR first, exactly the grid's frames, timestamps from 0."""
    return f"{chunk_prefix(title_id, rendition_id)}{index:06d}.mp4"


def audio_key(title_id: str, track_id: str) -> str:
    return f"titles/{title_id}/audio/{track_id}.mp4"


def subtitle_key(title_id: str, track_id: str) -> str:
    return f"titles/{title_id}/subtitles/{track_id}.vtt"


def job_record_key(title_id: str, job_id: str) -> str:
    """What a finished job produced (its result event's payload): a redelivered job re-emits it."""
    job = job_id.removeprefix(f"{title_id}:")
    return f"titles/{title_id}/jobs/{job.replace(':', '/')}.json"


def job_claim_key(title_id: str, job_id: str) -> str:
    """The lease of the worker encoding a job (``reelstream.workers.claims``)."""
    return job_record_key(title_id, job_id).removesuffix(".json") + ".claim"


def chunk_job_id(title_id: str, encoder_group: str, chunk_index: int, slot: int | None = None,
                 partitions: int = 12) -> str:
    """``{title}:{group}:{chunk}``, plus ``~{salt}`` when ``slot`` is given: the smallest salt
    whose murmur2 puts the job on partition ``slot % partitions``, so a title's jobs go
    round-robin over the jobs topic (hashing alone put 15 jobs on 9 of 12 partitions, 3 on
    some, and a 2-worker fleet finished when the busier member did)."""
    return _slotted(f"{title_id}:{encoder_group}:{chunk_index}", slot, partitions)


def audio_job_id(title_id: str, track_id: str, slot: int | None = None, partitions: int = 12) -> str:
    return _slotted(f"{title_id}:audio:{track_id}", slot, partitions)


def _slotted(base: str, slot: int | None, partitions: int) -> str:
    if slot is None:
        return base
    from reelstream.events.partitioning import partition_for

    target = slot % partitions
    salt = 0
    while partition_for(f"{base}~{salt}".encode(), partitions) != target:
        salt += 1
    return f"{base}~{salt}"


def audio_track_id(language: str, audio_description: bool) -> str:
    return f"audio-{language}" + ("-ad" if audio_description else "")


def text_track_id(language: str, sdh: bool, forced: bool) -> str:
    return f"text-{language}" + ("-sdh" if sdh else "-forced" if forced else "")
