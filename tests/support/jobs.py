"""A transcode job on the log, over a master made for it: what the worker tests feed a worker."""

from __future__ import annotations

from pathlib import Path

from reelstream.events.model import Event, new_event
from reelstream.media.transcode import layout
from reelstream.runtime import Runtime
from tests.support.media import make_master


def publish_chunk_job(runtime: Runtime, folder: Path, title: str, *, seconds: int, size: str, group: str,
                      rendition: tuple[str, str, int, int, int]) -> Event:
    """One ``ChunkTranscodeRequested`` over the whole of a ``seconds``-long 24-fps master of
    ``size``, for one rung ``rendition`` = (rendition id, codec, width, height, kbit/s)."""
    folder.mkdir(parents=True)
    master = make_master(folder / "film.mp4", seconds=seconds, size=size, languages=("en",))
    source = f"titles/{title}/master/film.mp4"
    runtime.objects.put(source, master)
    rendition_id, codec, width, height, kbps = rendition
    job = new_event("ChunkTranscodeRequested", {
        "job_id": layout.chunk_job_id(title, group, 0), "title_id": title, "encoder_group": group,
        "chunk_index": 0, "source_key": source, "start_ms": 0, "duration_ms": seconds * 1000,
        "rungs": [{"rendition_id": rendition_id, "codec": codec, "width": width, "height": height,
                   "bitrate_kbps": kbps, "hdr": False, "crf": None}],
        "attempt": 1, "prefer_gpu": False, "frame_rate": "24/1", "start_frame": 0, "frame_count": seconds * 24,
        "source_hdr": False, "master_display": None, "max_cll": None}, producer="test")
    runtime.publish(job)
    return job
