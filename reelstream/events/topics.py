"""The topic catalog: every topic ReelStream writes, its key, layout and the events it carries.

This table is the documentation analytics teams read (``reel topics`` prints it) and
what ``ensure_topics`` creates on Kafka and in the embedded log.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from reelstream.errors import EventNotAllowedOnTopic, UnknownTopic
from reelstream.events.model import Event

DAY_MS = 24 * 3600 * 1000
FOREVER = -1


class Cleanup(StrEnum):
    DELETE = "delete"  # history: time-based retention
    COMPACT = "compact"  # latest state per key


@dataclass(frozen=True)
class Topic:
    name: str
    key_field: str
    partitions: int
    cleanup: Cleanup
    retention_ms: int
    event_types: frozenset[str]
    doc: str

    def key_of(self, event: Event) -> bytes:
        if event.type not in self.event_types:
            raise EventNotAllowedOnTopic(
                f"{event.type} may not be produced to {self.name}; it carries {', '.join(sorted(self.event_types))}"
            )
        return str(event.data[self.key_field]).encode()

    @property
    def kafka_config(self) -> dict[str, str]:
        config = {"cleanup.policy": self.cleanup.value}
        if self.cleanup is Cleanup.DELETE:
            config["retention.ms"] = str(self.retention_ms)
        return config


def _topic(name: str, key: str, partitions: int, cleanup: Cleanup, retention_ms: int, events: str, doc: str) -> Topic:
    return Topic(name, key, partitions, cleanup, retention_ms, frozenset(events.split()), doc)


TOPICS: tuple[Topic, ...] = (
    _topic("reel.catalog", "title_id", 6, Cleanup.DELETE, FOREVER,
           "TitleRegistered MezzanineUploaded IngestValidated IngestRejected TitleComplexityAnalyzed TitleLadderChosen "
           "TranscodePlanned RenditionCompleted TitleTranscoded TitleTranscodeFailed TitlePackaged TitlePublished",
           "The life of every title, from registration to publication. Kept forever: the catalog is rebuilt from it."),
    _topic("reel.transcode.jobs", "job_id", 12, Cleanup.DELETE, 7 * DAY_MS,
           "ChunkTranscodeRequested AudioTranscodeRequested",
           "Work for the transcode worker fleet (a consumer group), keyed per chunk so jobs spread over partitions."),
    _topic("reel.transcode.results", "title_id", 6, Cleanup.DELETE, 30 * DAY_MS,
           "ChunkTranscoded ChunkFailed AudioTranscoded",
           "Outcomes of chunk jobs, keyed by title so one processor instance sees all of a title's chunks in order."),
    _topic("reel.keys", "title_id", 6, Cleanup.COMPACT, FOREVER,
           "ContentKeysCreated",
           "Key ids per title (never key bytes). Compacted: the latest key set of each title."),
    _topic("reel.entitlements", "user_id", 6, Cleanup.DELETE, FOREVER,
           "EntitlementGranted EntitlementRevoked",
           "Subscriptions, purchases and rentals per account. Kept forever: entitlements are rebuilt from it."),
    _topic("reel.licenses", "user_id", 6, Cleanup.DELETE, 365 * DAY_MS,
           "LicenseGranted LicenseDenied DownloadLicensed DownloadReturned",
           "Every license decision, for audits, concurrency limits and offline downloads."),
    _topic("reel.playback", "user_id", 12, Cleanup.DELETE, 30 * DAY_MS,
           "PlaybackStarted PlaybackHeartbeat PlaybackPaused PlaybackStopped",
           "Player sessions and heartbeats (every 30 s and on pause/stop/seek/exit), keyed by account."),
    _topic("reel.sessions", "user_id", 6, Cleanup.DELETE, 30 * DAY_MS,
           "PlaybackSessionOpened PlaybackSessionClosed",
           "Playback sessions becoming live and ending, one event each per session (not per heartbeat), keyed by "
           "account: license servers fold them for the concurrent-stream limit."),
    _topic("reel.qoe", "session_id", 6, Cleanup.DELETE, 90 * DAY_MS,
           "PlaybackSessionSummarized",
           "Quality of experience per playback session (startup, rebuffer ratio, bitrate, switches), for analytics."),
    _topic("reel.edge", "session_id", 12, Cleanup.DELETE, 30 * DAY_MS,
           "EdgeRequestServed",
           "Edge cache requests with the player's CMCD, from the nginx logs, keyed by playback session."),
    _topic("reel.workers", "worker_id", 3, Cleanup.DELETE, 7 * DAY_MS,
           "TranscodeWorkerStarted TranscodeWorkerHeartbeat TranscodeWorkerStopped",
           "The transcode fleet: each worker's capabilities at start, heartbeats, orderly stops (job routing reads it)."),
    _topic("reel.deadletter", "source_topic", 1, Cleanup.DELETE, 30 * DAY_MS,
           "DeadLetter",
           "Messages a consumer could not decode or process, with the reason. Nothing is dropped silently."),
)

# Secondary topics carry events whose home is another topic (``topic_for`` names the home):
# GPU-preferred jobs go here while a GPU worker is alive (``reelstream.processors.transcode.fleet``).
GPU_JOBS_TOPIC = "reel.transcode.jobs.gpu"
SECONDARY_TOPICS: tuple[Topic, ...] = (
    _topic(GPU_JOBS_TOPIC, "job_id", 12, Cleanup.DELETE, 7 * DAY_MS,
           "ChunkTranscodeRequested AudioTranscodeRequested",
           "Jobs that prefer a GPU worker (HEVC UHD); only GPU workers consume it, and only while one is alive "
           "does the planner send jobs here instead of reel.transcode.jobs."),
)

_BY_NAME = {t.name: t for t in TOPICS + SECONDARY_TOPICS}
_BY_EVENT = {event_type: t for t in TOPICS for event_type in t.event_types}
DEAD_LETTER_TOPIC = "reel.deadletter"


def topic(name: str) -> Topic:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownTopic(f"no topic '{name}'; known topics: {', '.join(_BY_NAME)}") from None


def topic_for(event_type: str) -> Topic:
    try:
        return _BY_EVENT[event_type]
    except KeyError:
        raise UnknownTopic(f"no topic carries {event_type}") from None
