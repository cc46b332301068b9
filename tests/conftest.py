"""Shared fixtures: where the real servers are, and what to do when one is absent.

The servers are started by ``infra/local/start.sh`` (the README's test command does
it). With ``REEL_REQUIRE_SERVERS=1`` (set by that command and by CI) a missing server
fails the test loudly; otherwise tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _require(name: str, host: str, port: int) -> None:
    if _port_open(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}; start it with: bash infra/local/start.sh"
    if os.environ.get("REEL_REQUIRE_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    bootstrap = os.environ.get("REEL_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    _require("Kafka", host, int(port))
    return bootstrap


@pytest.fixture(scope="session")
def cassandra_contact() -> tuple[list[str], int]:
    hosts = os.environ.get("REEL_CASSANDRA_HOSTS", "127.0.0.1").split(",")
    port = int(os.environ.get("REEL_CASSANDRA_PORT", "19042"))
    _require("Cassandra", hosts[0], port)
    return hosts, port


@pytest.fixture(scope="session")
def s3_settings() -> dict[str, str]:
    endpoint = os.environ.get("REEL_S3_ENDPOINT", "http://127.0.0.1:18333")
    hostport = endpoint.split("://", 1)[1].rstrip("/")
    host, port = hostport.rsplit(":", 1)
    _require("The S3 server", host, int(port))
    return {
        "endpoint": endpoint,
        "access_key": os.environ.get("REEL_S3_ACCESS_KEY", "reelstream"),
        "secret_key": os.environ.get("REEL_S3_SECRET_KEY", "reelstream-secret"),
        "region": os.environ.get("REEL_S3_REGION", "us-east-1"),
    }


@pytest.fixture
def unique() -> str:
    """A short unique suffix so tests on shared servers never see each other's data."""
    return uuid.uuid4().hex[:10]
