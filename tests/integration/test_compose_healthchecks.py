"""infra/docker-compose.yml's S3 health check, run here as the container runs it (the same
shell command, pointed at a port of this machine): it must pass against a real S3Proxy and
fail against a server that merely accepts connections or answers HTTP without S3."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "infra" / "docker-compose.yml"
S3_PORT = "18333"  # where the s3 service listens inside its container


def s3_check(port: int) -> int:
    """The s3 service's health check against 127.0.0.1:``port``; its exit status."""
    test = yaml.safe_load(COMPOSE.read_text())["services"]["s3"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and f"127.0.0.1/{S3_PORT}" in test[1], test
    timeout = yaml.safe_load(COMPOSE.read_text())["services"]["s3"]["healthcheck"]["timeout"]
    command = test[1].replace(f"127.0.0.1/{S3_PORT}", f"127.0.0.1/{port}")
    # Docker kills a check at its timeout and counts it failed; `timeout` does the same here.
    return subprocess.run(["timeout", timeout.rstrip("s"), "sh", "-c", command], check=False).returncode


class _NotS3(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(403)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<html>Forbidden</html>")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_not_s3() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotS3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_port_that_only_accepts_is_not_ready() -> None:
    with socket.socket() as listener:  # a JVM that bound its port but serves nothing yet
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert s3_check(listener.getsockname()[1]) != 0


def test_an_http_answer_that_is_not_s3_is_not_ready(http_not_s3: int) -> None:
    assert s3_check(http_not_s3) != 0


def test_the_real_s3_server_is_ready(s3_settings: dict[str, str]) -> None:
    assert s3_check(int(s3_settings["endpoint"].rsplit(":", 1)[1])) == 0
