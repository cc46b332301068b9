"""Settings: environment variables, then an optional TOML file, validated at start.

Every field is documented where it is declared; a bad value fails at start with the
setting's name and what is wrong with it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from reelstream.addresses import check_bind
from reelstream.errors import ConfigError
from reelstream.stores.namespaced import check_namespace

# infra/local/env.sh's S3 credentials: published, so fit only for a server on the loopback.
LOCAL_S3_CREDENTIALS = ("reelstream", "reelstream-secret")


def is_loopback(host: str) -> bool:
    """``host`` (a URL's host) is this machine's loopback: ``localhost``, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_SCHEMES = {
    "log_url": ("sqlite", "kafka"),
    "state_url": ("sqlite", "cassandra"),
    "objects_url": ("file", "s3"),
}


def local_path(url: str) -> Path:
    """The file or folder a ``sqlite://`` or ``file://`` URL names. ``sqlite:///abs/log.db`` is
    absolute; ``sqlite://rel/log.db`` is relative to the working directory (urlparse would read
    ``rel`` as a host and drop it, writing ``/log.db`` at the filesystem's root)."""
    parsed = urlparse(url)
    host = "" if parsed.netloc in ("", "localhost") else parsed.netloc
    return Path(host + parsed.path)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".reel")
    """REEL_DATA_DIR: where the embedded runtime keeps its SQLite files and objects."""
    log_url: str = ""
    """REEL_LOG_URL: ``sqlite:///path/log.db`` (embedded) or ``kafka://host:port[,host:port]``."""
    state_url: str = ""
    """REEL_STATE_URL: ``sqlite:///path/state.db`` or ``cassandra://host[,host]:port/keyspace``."""
    objects_url: str = ""
    """REEL_OBJECTS_URL: ``file:///dir`` or ``s3://bucket?endpoint=http://host:port`` (no endpoint: AWS)."""
    schema_registry_url: str | None = None
    """REEL_SCHEMA_REGISTRY_URL: when set, events use the Confluent wire format with this registry."""
    group_prefix: str = "reel"
    """REEL_GROUP_PREFIX: consumer groups are ``<prefix>.processor.<name>`` (embedded host) and
    ``<prefix>.processors`` (Faust); change it to run a second, independent set of processors."""
    namespace: str = ""
    """REEL_NAMESPACE: names this deployment on an event log other deployments share: its topics
    are ``<namespace>.reel.catalog`` ... and its consumer groups ``<namespace>.<group>``, so two
    deployments on one Kafka cluster never read each other's events (empty: the plain names)."""
    producer: str = f"reel@{socket.gethostname()}"
    """REEL_PRODUCER: the ``producer`` written into every event's header."""
    s3_access_key: str | None = None
    """REEL_S3_ACCESS_KEY: S3 access key (else boto3's usual credential chain)."""
    s3_secret_key: str | None = None
    """REEL_S3_SECRET_KEY: S3 secret key."""
    s3_region: str = "us-east-1"
    """REEL_S3_REGION: S3 region."""
    edge_host: str = "127.0.0.1"
    """REEL_EDGE_HOST: the address ``reel edge up`` listens on: origin, nginx tiers (PoP, ISP
    appliance) and steering server. ``127.0.0.1``: this machine only; ``0.0.0.0``: every
    interface (in a container, whose port map cannot reach a loopback listener). An IP address."""
    ladder_mode: str = "fixed"
    """REEL_LADDER_MODE: ``fixed`` (the configured ladder, every title alike; the baseline) or
    ``per_title`` (H.264 rungs chosen per title from trial encodes scored with SSIM)."""

    def __post_init__(self) -> None:
        self._check_s3_credentials()
        data_dir = Path(self.data_dir).resolve()
        if data_dir.exists() and not data_dir.is_dir():
            raise ConfigError(f"data_dir (REEL_DATA_DIR or --data-dir) = {str(self.data_dir)!r}: a file, not a folder")
        object.__setattr__(self, "data_dir", data_dir)
        # data_dir is absolute, so these read sqlite:///abs/path like any SQLAlchemy-style URL.
        defaults = {"log_url": f"sqlite://{data_dir}/log.db", "state_url": f"sqlite://{data_dir}/state.db",
                    "objects_url": f"file://{data_dir}/objects"}
        for name, default in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, default)
        if self.namespace:
            check_namespace(self.namespace)
        check_bind(self.edge_host, "edge_host (REEL_EDGE_HOST)")
        if self.ladder_mode not in ("fixed", "per_title"):
            raise ConfigError(f"ladder_mode (REEL_LADDER_MODE) = {self.ladder_mode!r}: must be fixed or per_title")
        for name, schemes in _SCHEMES.items():
            scheme = urlparse(getattr(self, name)).scheme
            if scheme not in schemes:
                raise ConfigError(
                    f"{name} (REEL_{name.upper()}) = {getattr(self, name)!r}: the scheme must be one of "
                    f"{', '.join(s + '://' for s in schemes)}")
            if scheme in ("sqlite", "file"):  # absolute, so every role opens the same file whatever its cwd
                object.__setattr__(self, name, f"{scheme}://{local_path(getattr(self, name)).resolve()}")

    def _check_s3_credentials(self) -> None:
        """The local S3 server's well-known credentials are for a server on the loopback only:
        an S3 anyone on the network knows the keys of is an open one."""
        parsed = urlparse(self.objects_url)
        if parsed.scheme != "s3" or (self.s3_access_key, self.s3_secret_key) != LOCAL_S3_CREDENTIALS:
            return
        endpoint = parse_qs(parsed.query).get("endpoint", [""])[0]
        if not is_loopback(urlparse(endpoint).hostname or ""):
            raise ConfigError(
                f"REEL_S3_ACCESS_KEY / REEL_S3_SECRET_KEY are the local S3 server's well-known defaults, for a server "
                f"on this machine's loopback only, and the S3 endpoint is {endpoint or 'AWS'!r}: give the server "
                "its own credentials (`reel secrets` generates them) and set them here")

    @property
    def embedded(self) -> bool:
        return self.log_url.startswith("sqlite:")

    def with_servers(self, kafka: bool = False, cassandra: bool = False, s3: bool = False) -> Settings:
        """Point the chosen ports at the local real servers (``infra/local/env.sh``)."""
        env = os.environ
        changes: dict[str, Any] = {}
        if kafka:
            changes["log_url"] = f"kafka://{env.get('REEL_KAFKA_BOOTSTRAP', '127.0.0.1:19092')}"
        if cassandra:
            hosts = env.get("REEL_CASSANDRA_HOSTS", "127.0.0.1")
            changes["state_url"] = f"cassandra://{hosts}:{env.get('REEL_CASSANDRA_PORT', '19042')}/reelstream"
        if s3:
            endpoint = env.get("REEL_S3_ENDPOINT", "http://127.0.0.1:18333")
            changes["objects_url"] = f"s3://reelstream-origin?endpoint={endpoint}"
            changes["s3_access_key"] = self.s3_access_key or env.get("REEL_S3_ACCESS_KEY", LOCAL_S3_CREDENTIALS[0])
            changes["s3_secret_key"] = self.s3_secret_key or env.get("REEL_S3_SECRET_KEY", LOCAL_S3_CREDENTIALS[1])
        return replace(self, **changes)


def load_settings(env: Mapping[str, str] | None = None, config_file: Path | None = None) -> Settings:
    """Settings from ``REEL_*`` variables over an optional TOML file (``REEL_CONFIG``)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or (Path(env["REEL_CONFIG"]) if env.get("REEL_CONFIG") else None)
    known = {f.name for f in fields(Settings)}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"config file {path}: {e}") from e
        unknown = set(document) - known
        if unknown:
            raise ConfigError(f"config file {path}: unknown setting(s) {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(sorted(known))}")
        # Every setting is text, as its REEL_* variable is; TOML would let a number or a list through.
        for name, value in sorted(document.items()):
            if not isinstance(value, str):
                raise ConfigError(f"config file {path}: {name} must be a string, not {type(value).__name__} "
                                  f"({value!r}); write it quoted, as REEL_{name.upper()} would hold it")
        values.update(document)
    for name in known:
        variable = f"REEL_{name.upper()}"
        if env.get(variable):
            values[name] = env[variable]
    return Settings(**values)
