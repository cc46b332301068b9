"""Adapters chosen by URL: running on one machine or on servers is a matter of URLs."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from reelstream.config import Settings, local_path
from reelstream.errors import ConfigError
from reelstream.stores.ports import EventLog, ObjectStore, StateStore


def open_log(url: str) -> EventLog:
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        from reelstream.stores.embedded_log import EmbeddedLog

        return EmbeddedLog(local_path(url))
    if parsed.scheme == "kafka":
        from reelstream.stores.kafka import KafkaLog

        return KafkaLog(parsed.netloc)
    raise ConfigError(f"log_url {url!r}: use sqlite:///path or kafka://host:port")


def open_state(url: str) -> StateStore:
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        from reelstream.stores.sqlite_state import SqliteStateStore

        return SqliteStateStore(local_path(url))
    if parsed.scheme == "cassandra":
        from reelstream.stores.cassandra import CassandraStateStore

        hosts_part, _, port = parsed.netloc.rpartition(":")
        keyspace = parsed.path.strip("/") or "reelstream"
        if not hosts_part or not port.isdigit():
            raise ConfigError(f"state_url {url!r}: use cassandra://host[,host]:port/keyspace")
        return CassandraStateStore(hosts_part.split(","), int(port), keyspace)
    raise ConfigError(f"state_url {url!r}: use sqlite:///path or cassandra://host:port/keyspace")


def open_objects(url: str, settings: Settings | None = None, *, create_bucket: bool = False) -> ObjectStore:
    """``create_bucket``: make a missing S3 bucket (setup: `reel up`, `reel topics --create`);
    elsewhere a missing bucket is an error, so a mistyped name is not a new empty origin."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        from reelstream.stores.localdir import LocalDirObjectStore

        return LocalDirObjectStore(local_path(url))
    if parsed.scheme == "s3":
        from reelstream.stores.s3 import S3ObjectStore

        query = parse_qs(parsed.query)
        settings = settings or Settings()
        return S3ObjectStore(
            bucket=parsed.netloc, endpoint_url=query.get("endpoint", [None])[0],
            region=settings.s3_region, access_key=settings.s3_access_key, secret_key=settings.s3_secret_key,
            create_bucket=create_bucket)
    raise ConfigError(f"objects_url {url!r}: use file:///dir or s3://bucket?endpoint=...")


def replay_state_url(live_url: str, suffix: str) -> str:
    """A fresh store beside the live one, for `reel replay`."""
    parsed = urlparse(live_url)
    if parsed.scheme == "sqlite":
        path = local_path(live_url)
        return f"sqlite://{path.with_name(f'{path.stem}-{suffix}{path.suffix}')}"
    keyspace = parsed.path.strip("/") or "reelstream"
    return f"cassandra://{parsed.netloc}/{keyspace}_{suffix}"
