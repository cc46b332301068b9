"""Object keys of a title: a contract with the packager, which reads chunks in index order."""

from __future__ import annotations

import functools


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
    whose murmur2 puts the job on partition ``spread_order(partitions)[slot % partitions]``, so
    a title's jobs go round-robin over the jobs topic (hashing alone put 15 jobs on 9 of 12
    partitions, 3 on some, and a 2-worker fleet finished when the busier member did)."""
    return _slotted(f"{title_id}:{encoder_group}:{chunk_index}", slot, partitions)


def audio_job_id(title_id: str, track_id: str, slot: int | None = None, partitions: int = 12) -> str:
    return _slotted(f"{title_id}:audio:{track_id}", slot, partitions)


@functools.cache
def spread_order(partitions: int) -> tuple[int, ...]:
    """The partitions in the order consecutive slots visit them: mixed-radix digit reversal
    over the prime factors of ``partitions``, smallest first (12: 0 6 3 9 1 7 4 10 2 8 5 11).

    Consumer groups hand members contiguous ranges of partitions (Kafka's range assignor, and
    the embedded log's). Visiting the partitions in plain order, the jobs of a title that does
    not fill every partition equally land on the first ranges: 14 jobs on 12 partitions gave
    one of 2 workers 8 jobs and the other 6. In this order consecutive slots alternate between
    the halves (and cycle through the quarters) of the partition list, so any run of a
    title's jobs splits evenly between 2 or 4 members, within one job between 3 or 6.
    """
    factors, n, f = [], partitions, 2
    while n > 1:
        while n % f == 0:
            factors.append(f)
            n //= f
        f += 1
    order = []
    for slot in range(partitions):
        partition, stride, rest = 0, partitions, slot
        for base in factors:
            stride //= base
            partition += (rest % base) * stride
            rest //= base
        order.append(partition)
    return tuple(order)


def _slotted(base: str, slot: int | None, partitions: int) -> str:
    if slot is None:
        return base
    from reelstream.events.partitioning import partition_for

    target = spread_order(partitions)[slot % partitions]
    salt = 0
    while partition_for(f"{base}~{salt}".encode(), partitions) != target:
        salt += 1
    return f"{base}~{salt}"


def audio_track_id(language: str, audio_description: bool) -> str:
    return f"audio-{language}" + ("-ad" if audio_description else "")


def text_track_id(language: str, sdh: bool, forced: bool) -> str:
    return f"text-{language}" + ("-sdh" if sdh else "-forced" if forced else "")
