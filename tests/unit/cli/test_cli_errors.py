"""What an operator sees when `reel` is given a bad value: a message naming it and a
non-zero exit, never a Python traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``reel ARGV``: its exit status (argparse's own exits included) and its stderr."""
    try:
        status = main(argv)
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    return status, capsys.readouterr().err


def test_a_bad_gateway_port_variable_is_named_and_breaks_no_other_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REEL_GATEWAY_PORT", "80o0")
    status, _ = run(["topics", "--data-dir", str(tmp_path)], capsys)
    assert status == 0  # only `reel gateway` reads REEL_GATEWAY_PORT
    status, err = run(["gateway", "--data-dir", str(tmp_path)], capsys)
    assert status == 2 and "REEL_GATEWAY_PORT" in err and "'80o0'" in err


def test_an_unknown_gateway_in_only_is_refused_with_the_known_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["gateway", "--data-dir", str(tmp_path), "--only", "licenses,licences"], capsys)
    assert status == 2
    assert "licences" in err and "manifests" in err and "Traceback" not in err


def test_emit_with_a_payload_that_is_not_json_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err = run(["emit", "--data-dir", str(tmp_path), "EntitlementGranted", "{user_id: u1}"], capsys)
    assert status == 2
    assert "reel emit" in err and "not JSON" in err
    status, err = run(["emit", "--data-dir", str(tmp_path), "EntitlementGranted", '["u1"]'], capsys)
    assert status == 2 and "JSON object" in err


@pytest.mark.parametrize(("argv", "named"), [
    (["worker", "transcode", "--processes", "-3"], "--processes: -3 is under 0"),
    (["worker", "transcode", "--threads", "two"], "--threads: 'two' is not a whole number"),
    (["up", "--transcode-processes", "-1"], "--transcode-processes: -1 is under 1"),
    (["up", "--port", "99999"], "--port: 99999: a port is 1..65535"),
    (["edge", "config", "--base-port", "0"], "--base-port: 0 is under 1"),
    (["load", "--title", "t", "--players", "0"], "--players: 0 is under 1"),
    (["worker", "package", "--threads", "0"], "--threads: 0 is under 1"),
    (["tail", "reel.catalog", "--limit", "-5"], "--limit: -5 is under 1"),
    (["load", "--title", "t", "--accounts", "/nonexistent/accounts.txt"],
     "--accounts: /nonexistent/accounts.txt: no such file"),
    (["load", "--title", "t", "--accounts", "/"], "--accounts: /: a folder"),
])
def test_a_count_or_port_out_of_range_is_refused_before_anything_runs(
        argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    # `--processes -3` ran one worker, and `--transcode-processes -1` went on to the pool.
    status, err = run(argv, capsys)
    assert status == 2 and named in err


def test_a_gateway_port_in_use_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import base64
    import socket

    monkeypatch.setenv("REEL_KEK", base64.b64encode(bytes(32)).decode())
    monkeypatch.setenv("REEL_GATEWAY_SIGNING_KEYS", "k1:" + base64.b64encode(bytes(32)).decode())
    monkeypatch.setenv("REEL_EDGE_SECRET", "a-secret-of-16-chars-or-more")
    monkeypatch.setenv("REEL_EDGE_BASE_URL", "http://127.0.0.1:1")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, err = run(["gateway", "--data-dir", str(tmp_path), "--port", str(port)], capsys)
    assert status == 2 and f"port {port} on 127.0.0.1 is in use" in err and "--port PORT" in err


def test_output_cut_short_by_its_reader_is_no_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    # The reader closes its end before `reel` has written a line (as `| head -1` does once it has its line).
    done = subprocess.run(f"{sys.executable} -m reelstream.cli topics --data-dir {tmp_path} | (exec 0<&-; sleep 3)",
                          shell=True, capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
