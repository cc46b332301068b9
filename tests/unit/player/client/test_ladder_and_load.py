"""The ladder a session plays (licensed rungs, sizes by source, chunk alignment) and the
load generator's pure parts (traces, percentiles, the summary and its table)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from reelstream.media.package.sizes import SegmentSizes
from reelstream.player.abr import Observation
from reelstream.player.client.decrypt import TrackInfo
from reelstream.player.client.errors import LicenseIncomplete
from reelstream.player.client.ladder import build_ladder, describe
from reelstream.player.client.manifest import Presentation, Rendition, SegmentRef
from reelstream.player.client.session import Decision, PlaybackReport
from reelstream.player.client.steering import Poll
from reelstream.player.load import (
    Outcome,
    json_line,
    percentile,
    render_table,
    summarize,
    synthetic_trace,
    traces_for,
)
from reelstream.player.traces import Trace


def rendition(rid: str, kind: str, kbps: int, kid: str, segments: int = 3, **kw: object) -> Rendition:
    segs = tuple(SegmentRef(n + 1, 2.0 * n, 2.0, f"http://e/{rid}/{n + 1}") for n in range(segments))
    return Rendition(rid, kind, kbps * 1000, "avc1" if kind == "video" else "mp4a", f"http://e/{rid}/init.mp4",  # type: ignore[arg-type]
                     segs, key_id=kid, **kw)  # type: ignore[arg-type]


def info(kid: str) -> tuple[TrackInfo, bytes]:
    from reelstream.media.package.boxes import Tenc

    return TrackInfo("video", "avc1", 90000, "cenc", Tenc(bytes.fromhex(kid), 16)), b""


SD, HD, AUDIO = "1" * 32, "2" * 32, "3" * 32


def presentation() -> tuple[Presentation, Rendition]:
    audio = rendition("audio-en", "audio", 128, AUDIO, segments=4, roles=("main",))
    p = Presentation("dash", 6.0, "cenc", (rendition("sd", "video", 800, SD), rendition("hd", "video", 3000, HD)),
                     (audio,), "http://gw/licenses/clearkey")
    return p, audio


def test_rungs_without_a_licensed_key_are_dropped_and_sizes_come_from_the_best_source() -> None:
    p, audio = presentation()
    inits = {"sd": info(SD), "hd": info(HD), "audio-en": info(AUDIO)}
    sizes = {"sd": SegmentSizes("sd", 1, (1000, 1100, 900)), "hd": None, "audio-en": SegmentSizes("a", 1, (10, 10, 10, 5))}
    ladder = build_ladder(p, audio, inits, {SD: b"k" * 16, AUDIO: b"a" * 16}, sizes)
    assert [r.video.rendition_id for r in ladder.rungs] == ["sd"] and ladder.dropped == {"hd": "no key licensed to this device"}
    assert ladder.bitrates_kbps == (928.0,)
    assert ladder.planned_bytes(0, 0).size == 1010 and ladder.planned_bytes(0, 0).source == "index"
    assert ladder.planned_bytes(2, 0).size == 900 + 10 + 5, "the last chunk carries the extra audio segment"
    video, extra = ladder.segments(2, 0)
    assert [s.number for _, s in video] == [3] and [s.number for _, s in extra] == [3, 4]
    assert ladder.index_at(0.0) == 0 and ladder.index_at(3.1) == 1 and ladder.index_at(6.0) == 3
    assert ladder.key_for("sd") == b"k" * 16 and ladder.key_for("audio-en") == b"a" * 16

    full = build_ladder(p, audio, inits, {SD: b"k" * 16, HD: b"h" * 16, AUDIO: b"a" * 16}, sizes)
    assert full.planned_bytes(1, 1).source == "nominal" and full.planned_bytes(1, 1).size == 750_000 + 10
    assert full.upcoming_sizes(1) == ((1110, 750_010), (915, 750_015))


def test_no_audio_key_is_an_error_not_a_silent_film() -> None:
    p, audio = presentation()
    with pytest.raises(LicenseIncomplete, match="audio-en"):
        build_ladder(p, audio, {"sd": info(SD), "hd": info(HD), "audio-en": info(AUDIO)}, {SD: b"k" * 16}, {})


def test_a_decision_reason_names_the_move_the_buffer_and_the_throughput() -> None:
    obs = Observation((2500.0,), (0.7,), 8.5, 0, ((1, 2),), 2, 2.0, (900.0, 3100.0))
    assert describe("ReelStreamMPC", obs, 1) == ("ReelStreamMPC: up to rung 1 (3100 kbit/s), buffer 8.5 s, "
                                                 "last chunk at 2500 kbit/s")


def test_synthetic_traces_are_reproducible_and_differ_per_player() -> None:
    a, b = synthetic_trace(1), synthetic_trace(2)
    assert a == synthetic_trace(1) and a.mbps != b.mbps
    assert len(a.times_s) == len(a.mbps) and all(r > 0 for r in a.mbps)
    given = [Trace("x", (0.0, 1.0), (1.0, 1.0))]
    assert [t.name for t in traces_for(3, given)] == ["x", "x", "x"]
    assert [t.name for t in traces_for(2, [], seed=0)] == ["synthetic-0", "synthetic-1"]


def test_nearest_rank_percentiles() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0 and percentile([3.0, 1.0, 2.0, 4.0], 99) == 4.0


def report(startup: float | None, stall: float, play: float, manifest: float, license_: float) -> PlaybackReport:
    r = PlaybackReport("t", "dash", "s", 0.0, ["sd"], {}, manifest_s=manifest, license_s=license_)
    r.startup_s, r.stall_s, r.play_s = startup, stall, play
    r.decisions = [Decision(1, 0, "sd", "first", 0.0, 0.0, 250_000, "index", 250_000, 1.0, 0.01, 2000.0, 0.0,
                            "pop", media_s=2.0)]
    r.beats = [{"event": "start"}]
    return r


def test_summary_counts_failures_and_weighs_stalls_by_time() -> None:
    steered = report(0.5, 1.0, 9.0, 0.010, 0.020)
    steered.decisions = [replace(steered.decisions[0], pathway=p) for p in ("isp-a", "isp-a", "pop-1")]
    steered.decisions[2] = replace(steered.decisions[2], failovers=("isp-a: segment 3 of sd: 503 from ...",))
    steered.startup_failovers = ["isp-a: init of sd: no answer"]
    steered.steering = [Poll(0.0, "u", 200, ("isp-a",), "isp-a"), Poll(1.0, "u", 0, (), "isp-a", "refused"),
                        Poll(2.0, "u", 200, ("pop-1",), "pop-1")]
    outcomes = [Outcome(0, "a", steered),
                Outcome(1, "b", report(1.5, 0.0, 10.0, 0.030, 0.040)),
                Outcome(2, "c", report(0.9, 0.0, 1.0, 0.020, 0.030), "segment 3: 503", "segment 503"),
                Outcome(3, "d", None, "license: 403", "license 403")]
    s = summarize(outcomes, 12.0)
    assert (s.players, s.started, s.completed, s.failed) == (4, 3, 2, 2)
    assert s.errors == {"segment 503": 1, "license 403": 1}
    assert s.rebuffer_ratio == pytest.approx(1.0 / 21.0, abs=1e-5)
    assert s.startup_s == {"p50": 0.9, "p90": 1.5, "p99": 1.5}
    assert s.license_ms["p50"] == 30.0 and s.manifest_ms["p99"] == 30.0
    assert s.avg_bitrate_kbps == 1000.0 and s.edge_nodes == {"pop": 5}
    assert (s.steering_polls, s.steering_failed, s.pathway_moves, s.segment_failovers) == (3, 1, 1, 1)
    figures = json.loads(json_line(s))
    assert figures["pathway_moves"] == 1 and figures["segment_failovers"] == 1
    assert s.startup_failovers == figures["startup_failovers"] == 1
    assert re.search(r"^segments retried on the next pathway +1$", render_table(s), re.MULTILINE)
    assert re.search(r"^session starts moved to the next pathway +1$", render_table(s), re.MULTILINE)
    assert figures["sessions_failed"] == 2 and figures["startup_p90_s"] == 1.5
    table = render_table(s)
    assert "license 403: 1" in table and "0.90 / 1.50 / 1.50" in table and "3 (1) / 1" in table
