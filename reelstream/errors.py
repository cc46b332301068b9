"""ReelStream's exceptions: one root, narrow subclasses a caller can act on.

Driver errors (sqlite3, confluent-kafka, cassandra-driver, botocore) are translated
into these at the adapter boundary with ``raise ... from e``.
"""


class ReelStreamError(Exception):
    """Root of every error ReelStream raises on purpose."""

    @property
    def transient(self) -> bool:
        """Whether the same call may succeed later (a server restarting), rather than fail
        until someone fixes something."""
        return True


class ConfigError(ReelStreamError):
    """A setting is missing or invalid; the message names the setting and the reason."""


class SchemaError(ReelStreamError):
    """The event schemas on disk are unreadable, inconsistent or incompatible."""


class SchemaRegistryUnavailable(SchemaError):
    """The schema registry could not be reached, or answered with a server error (5xx): not
    the message's fault, so a processor retries its batch rather than dead-lettering it."""


class SchemaViolation(ReelStreamError):
    """An event does not match its schema; raised at produce time, before anything is written.

    ``field`` names the offending field path (e.g. ``license_terms.window_start``).
    """

    def __init__(self, event_type: str, field: str, message: str) -> None:
        super().__init__(f"{event_type}: field '{field}': {message}")
        self.event_type = event_type
        self.field = field


class UndecodableEvent(ReelStreamError):
    """Bytes read from a topic are not a ReelStream event (bad marker, unknown fingerprint, corrupt body)."""


class UnknownTopic(ReelStreamError):
    """A topic name is not in the topic catalog."""


class EventNotAllowedOnTopic(ReelStreamError):
    """An event type was produced to a topic whose catalog entry does not list it."""


class EventLogError(ReelStreamError):
    """The event log (Kafka or the embedded SQLite log) failed an append, poll, commit or seek."""


class StateStoreError(ReelStreamError):
    """The state store (Cassandra or SQLite) failed a read or write."""


class ObjectStoreError(ReelStreamError):
    """The object store (S3 or a local directory) failed an operation."""


class ObjectNotFound(ObjectStoreError):
    """The requested object key does not exist."""


class ChecksumMismatch(ObjectStoreError):
    """The bytes stored or read do not match the SHA-256 recorded for them."""


class ReplayMismatch(ReelStreamError):
    """``reel replay --verify`` found rebuilt state that differs from the live state."""
