"""The README's main job: `reel up` ingests the sample, publishes it and serves a page that plays it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.ports import free_port, free_port_block

REPO = Path(__file__).resolve().parents[2]


def call(url: str, body: dict[str, object] | None = None, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                     headers=headers, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


def test_reel_up_publishes_the_sample_and_serves_a_playable_page(tmp_path: Path) -> None:
    # The edge takes its steering server, origin, PoP and appliance from base - 2 up.
    port, edge_port = free_port(), free_port_block(6) + 2
    env = {**os.environ, "REEL_DATA_DIR": str(tmp_path / "reel")}
    for name in ("REEL_LOG_URL", "REEL_STATE_URL", "REEL_OBJECTS_URL"):
        env.pop(name, None)
    up = subprocess.Popen([sys.executable, "-m", "reelstream.cli", "up", "--port", str(port),
                           "--edge-port", str(edge_port), "--transcode-processes", "2"],
                          env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    output: list[str] = []
    try:
        deadline = time.monotonic() + 600
        assert up.stdout is not None
        while time.monotonic() < deadline:
            line = up.stdout.readline()
            if not line:
                break
            output.append(line)
            if "(Ctrl-C stops everything)" in line:
                break
        text = "".join(output)
        assert f"Watch it: http://127.0.0.1:{port}/web/" in text, text
        assert "big-buck-bunny: PUBLISHED, 6 renditions transcoded, packaged" in text, text
        email, password = re.search(r"sign in as (\S+) / (\S+)", text).groups()  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        status, page = call(f"{base}/web/")
        assert status == 200 and b"shaka" in page.lower()
        _, session = call(f"{base}/auth/sessions", {"email": email, "password": password})
        _, device = call(f"{base}/auth/devices", {"name": "test", "device_type": "browser",
                                                    "security_level": "software"}, json.loads(session)["token"])
        token = json.loads(device)["token"]
        _, catalog = call(f"{base}/web/api/catalog", token=token)
        assert "big-buck-bunny" in catalog.decode()
        status, mpd = call(f"{base}/manifests/titles/big-buck-bunny/manifest.mpd", token=token)
        assert status == 200 and b"<MPD" in mpd and b"cenc:default_KID" in mpd
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(timeout=60)
    # Every role it started has stopped with it: nothing listens on its ports any more.
    time.sleep(1)
    for p in (port, edge_port - 1, edge_port, edge_port + 1):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", p)) != 0, f"port {p} still answers after reel up stopped"
