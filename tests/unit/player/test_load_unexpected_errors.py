"""`reel load`: a player that fails with an exception no one foresaw (a bug) is counted and
logged as that player's error; the other players play on and the run reports them all."""

from __future__ import annotations

from typing import Any

import pytest

from reelstream.player import load
from reelstream.player.client import gateway
from reelstream.player.traces import Trace


async def test_one_players_unexpected_exception_is_its_outcome_not_the_runs_end(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # A fault no real gateway produces on demand: a player bug, injected into player 1 only.
    async def play(http: Any, config: Any) -> Any:
        if config.device.device_id == "d1":
            raise KeyError("rendition")
        return load.PlaybackReport(title_id=config.title_id, format="dash", session_id="s", start_position_s=0.0,
                                   ladder=[], dropped={})

    monkeypatch.setattr(load, "play", play)
    trace = Trace(name="flat", times_s=(0.0, 1.0), mbps=(5.0, 5.0))
    config = load.LoadConfig(gateway="http://gw", title_id="t", players=3, traces=[trace])
    devices = [gateway.Device(account_id=f"a{i}", device_id=f"d{i}", token="x") for i in range(3)]
    outcomes = await load.run_load(None, config, devices)  # type: ignore[arg-type]
    assert [o.error is None for o in outcomes] == [True, False, True]
    assert outcomes[1].error_kind == "unexpected KeyError" and "rendition" in (outcomes[1].error or "")
    assert "player 1 (trace flat) failed unexpectedly" in caplog.text


def test_a_request_no_server_answered_is_grouped_by_where_it_went_and_how_it_failed() -> None:
    # An --edge nobody listens on was summarised as "init of h264-240p-400k 0".
    from reelstream.errors import ReelStreamError
    from reelstream.player.client.errors import RequestFailed
    from reelstream.player.load import error_kind

    refused = RequestFailed("init of h264-240p-400k", "http://127.0.0.1:18999/t/init.mp4?sig=x", 0,
                            "ClientConnectorError: Cannot connect to host 127.0.0.1:18999")
    assert error_kind(refused) == "init of h264-240p-400k: no answer from 127.0.0.1:18999 (ClientConnectorError)"
    assert error_kind(RequestFailed("license", "http://g/licenses", 403, "denied")) == "license 403"
    assert error_kind(ReelStreamError("x")) == "ReelStreamError"
