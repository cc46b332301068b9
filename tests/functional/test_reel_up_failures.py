"""`reel up` when a step fails: it says what failed and leaves nothing running."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from reelstream.config import load_settings
from reelstream.up import RoleFailed, Supervisor, _ingest_sample, child_env


def test_a_sample_the_ingest_rejects_stops_up_with_a_message(tmp_path: Path) -> None:
    settings = load_settings(env={"REEL_DATA_DIR": str(tmp_path / "reel")})
    supervisor = Supervisor(tmp_path / "logs", child_env(settings, {}))

    def broken_sample(cache_dir: Path) -> tuple[Path, Path]:
        cache_dir.mkdir(parents=True, exist_ok=True)
        (cache_dir / "master.mp4").write_bytes(b"not a video")
        (cache_dir / "title.json").write_text("{}")
        return cache_dir / "master.mp4", cache_dir / "title.json"

    with pytest.raises(RoleFailed, match="ingest of the sample title t1 failed"):
        _ingest_sample(settings, supervisor, broken_sample, "t1")


def _group(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def test_a_role_that_dies_leaves_none_of_its_children_behind(tmp_path: Path) -> None:
    # The transcode role is a pool: `reel worker transcode --processes 2` and its two workers.
    # Killed (the OOM killer, say), its workers live on; `reel up` must stop them with the rest.
    settings = load_settings(env={"REEL_DATA_DIR": str(tmp_path / "reel")})
    supervisor = Supervisor(tmp_path / "logs", child_env(settings, {}))
    supervisor.start("transcode", "worker", "transcode", "--processes", "2")
    pool = supervisor.children["transcode"]
    try:
        deadline = time.monotonic() + 30
        while len(_group(pool.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_group(pool.pid)) == 3, "the pool's workers did not start"
        pool.kill()
        pool.wait()
        with pytest.raises(RoleFailed, match="transcode exited with code -9"):
            supervisor.check()
    finally:
        supervisor.stop()
    deadline = time.monotonic() + 30
    while _group(pool.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group(pool.pid) == []


def test_a_demo_account_whose_file_was_deleted_is_made_afresh(tmp_path: Path) -> None:
    # The account outlives demo-account.json: signing up the same address again is a 409,
    # which stopped `reel up` with a urllib traceback.
    from reelstream.config import Settings
    from reelstream.gateways.app import create_app
    from reelstream.runtime import Runtime
    from reelstream.up import DEMO_EMAIL, _demo_account
    from tests.support.browser import serve
    from tests.unit.gateways.support import settings

    config = Settings(data_dir=tmp_path / "reel")
    runtime = Runtime(config)
    try:
        with serve(create_app(runtime, settings(), None, gateways=("auth",))) as base:
            first, _ = _demo_account(config, base)
            (config.data_dir / "demo-account.json").unlink()
            second, password = _demo_account(config, base)
    finally:
        runtime.close()
    assert first == DEMO_EMAIL and second != DEMO_EMAIL and second.endswith("@reelstream.local")
    saved = json.loads((config.data_dir / "demo-account.json").read_text())
    assert (saved["email"], saved["password"]) == (second, password)


def test_a_port_another_program_serves_on_stops_up_before_anything_starts(tmp_path: Path) -> None:
    # A foreign web server on the gateway's port answered `reel up`'s readiness check, and the
    # demo account's email and password were posted to it.
    import http.server
    import subprocess
    import sys
    import threading

    requests: list[str] = []

    class Foreign(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Foreign) as foreign:
        threading.Thread(target=foreign.serve_forever, daemon=True).start()
        port = foreign.server_address[1]
        up = subprocess.run([sys.executable, "-m", "reelstream.cli", "up", "--no-sample", "--port", str(port),
                             "--data-dir", str(tmp_path / "reel")], capture_output=True, text=True, timeout=60,
                            check=False)
        foreign.shutdown()
    assert up.returncode != 0
    assert f"port {port} on 127.0.0.1 is in use" in up.stderr and "--port PORT" in up.stderr, up.stderr
    assert "Traceback" not in up.stderr and "starting" not in up.stdout, "nothing starts"
    assert requests == []


def test_a_foreign_health_page_is_not_taken_for_the_gateway(tmp_path: Path) -> None:
    from aiohttp import web

    from reelstream.up import _health_pid
    from tests.support.browser import serve

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    foreign = web.Application()
    foreign.router.add_get("/health", health)
    with serve(foreign) as base:
        assert _health_pid(f"{base}/health") is None
        assert _health_pid(f"{base}/nothing-here") is None


def test_waiting_checks_the_roles_before_the_condition(tmp_path: Path) -> None:
    from reelstream.up import wait_for

    settings = load_settings(env={"REEL_DATA_DIR": str(tmp_path / "reel")})
    supervisor = Supervisor(tmp_path / "logs", child_env(settings, {}))
    supervisor.start("broken", "no-such-command")
    supervisor.children["broken"].wait(timeout=30)
    with pytest.raises(RoleFailed, match="broken exited with code 2"):
        wait_for(lambda: True, supervisor, 5, "something another program answers for")


def test_an_unreachable_log_stops_up_before_any_role_starts(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = closed.getsockname()[1]  # nothing listens there once the socket closes
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    up = subprocess.run([sys.executable, "-m", "reelstream.cli", "up", "--no-sample", "--port", str(port),
                         "--data-dir", str(tmp_path / "reel")], capture_output=True, text=True, timeout=120,
                        check=False, env={**os.environ, "REEL_LOG_URL": f"kafka://127.0.0.1:{nowhere}"})
    assert up.returncode != 0 and f"127.0.0.1:{nowhere}" in up.stderr, up.stderr
    assert "starting" not in up.stdout and "Traceback" not in up.stderr, up.stdout + up.stderr


def test_a_kek_that_did_not_wrap_the_stored_keys_stops_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from reelstream.keys.kek import AesGcmKek
    from reelstream.keys.service import KekMismatch, KeyService
    from reelstream.runtime import Runtime
    from reelstream.up import _check_servers

    settings = load_settings(env={"REEL_DATA_DIR": str(tmp_path / "reel")})
    runtime = Runtime(settings)
    KeyService(runtime.state, AesGcmKek(bytes(range(32))), runtime.publish, producer="t").keys_for("t1", ["SD"])
    runtime.close()
    monkeypatch.setenv("REEL_KEK", base64.b64encode(bytes(range(32))).decode())
    _check_servers(settings)
    monkeypatch.setenv("REEL_KEK", base64.b64encode(bytes(32)).decode())
    with pytest.raises(KekMismatch, match="DATA_DIR/secrets.json"):
        _check_servers(settings)
