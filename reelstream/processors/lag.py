"""How far each of the deployment's consumers is behind the log: every processor (embedded
host or Faust), the transcode workers (CPU and GPU job topics) and the packaging workers.

Lag is what a group has still to read: per partition, the end offset less the group's
committed offset, or less the partition's start offset (the oldest record retention kept)
where the group has committed nothing there. A group that has committed nothing at all
has not run against this log; it is reported as such rather than as lagging by the
whole topic. Read-only: it asks the log, and starts no consumer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reelstream.errors import UnknownTopic
from reelstream.events.topics import GPU_JOBS_TOPIC
from reelstream.processors.app import faust_app_id
from reelstream.processors.base import Processor
from reelstream.processors.embedded import group_id
from reelstream.stores.ports import EventLog


@dataclass(frozen=True)
class ConsumerGroup:
    """A group of consumers that commits its progress: who it is, and what it reads."""

    name: str  # what an operator calls it: "processor sessions", "transcode workers (GPU)"
    group: str
    topics: tuple[str, ...]


@dataclass(frozen=True)
class TopicLag:
    consumer: str
    group: str
    topic: str
    lag: int | None  # None: the group has committed nothing on any of its topics
    partitions_behind: int


def consumer_groups(processors: Iterable[Processor], prefix: str) -> list[ConsumerGroup]:
    from reelstream.workers.package import CATALOG_TOPIC
    from reelstream.workers.package import worker_group as package_group
    from reelstream.workers.transcode import JOBS_TOPIC
    from reelstream.workers.transcode import worker_group as transcode_group

    processors = list(processors)
    groups = [ConsumerGroup(f"processor {p.name}", group_id(p, prefix), tuple(p.topics)) for p in processors]
    faust_topics = tuple(sorted({t for p in processors for t in p.topics}))
    return [*groups, ConsumerGroup("processors (Faust host)", faust_app_id(prefix), faust_topics),
            ConsumerGroup("transcode workers", transcode_group(prefix, JOBS_TOPIC), (JOBS_TOPIC,)),
            ConsumerGroup("transcode workers (GPU)", transcode_group(prefix, GPU_JOBS_TOPIC), (GPU_JOBS_TOPIC,)),
            ConsumerGroup("package workers", package_group(prefix), (CATALOG_TOPIC,))]


def lag_of(group: ConsumerGroup, log: EventLog) -> list[TopicLag]:
    """``group``'s lag per topic it reads (a topic not on the log, such as the GPU job topic
    where no GPU worker ever ran, is left out)."""
    offsets: dict[str, tuple[dict[int, int], dict[int, int], dict[int, int]]] = {}
    for topic in group.topics:
        try:
            offsets[topic] = (log.committed(group.group, topic), log.start_offsets(topic), log.end_offsets(topic))
        except UnknownTopic:
            continue
    ran = any(committed for committed, _, _ in offsets.values())
    out = []
    for topic, (committed, start, end) in offsets.items():
        if not ran:
            out.append(TopicLag(group.name, group.group, topic, None, 0))
            continue
        behind = [e - max(committed.get(p, 0), start.get(p, 0)) for p, e in end.items()]
        out.append(TopicLag(group.name, group.group, topic, sum(max(0, b) for b in behind),
                            sum(1 for b in behind if b > 0)))
    return out
