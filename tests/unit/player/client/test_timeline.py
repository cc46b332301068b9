"""The virtual clock on hand-built situations: start-up, a stall, a pause, a seek, a stop,
heartbeats every 30 s of play time, and the end of the title."""

from __future__ import annotations

import pytest

from reelstream.player.client.timeline import Pause, Seek, Stop, Timeline


def events(t: Timeline) -> list[tuple[str, float]]:
    return [(b.event, round(b.position_s, 3)) for b in t.take_beats()]


def test_first_frame_when_the_start_buffer_is_in_then_a_stall_when_downloads_lag() -> None:
    t = Timeline(position_s=0.0, duration_s=10.0, start_buffer_s=2.0)
    t.wait(0.5)  # manifest and license
    t.wait(1.0)  # first chunk
    t.append(2.0)
    assert t.startup_s == pytest.approx(1.5) and events(t) == [("start", 0.0)]
    t.wait(3.0)  # the next chunk takes 3 s: 2 s play, 1 s stall
    assert t.position_s == pytest.approx(2.0) and t.stall_s == pytest.approx(1.0)
    t.append(2.0)
    t.wait(0.5)
    assert t.position_s == pytest.approx(2.5) and t.stall_s == pytest.approx(1.0)
    assert t.now_s == pytest.approx(5.0)


def test_heartbeat_every_30_s_of_play_time_not_wall_time() -> None:
    t = Timeline(position_s=100.0, duration_s=400.0, heartbeat_s=30.0)
    t.append(70.0)
    t.wait(65.0)
    assert events(t) == [("start", 100.0), ("heartbeat", 130.0), ("heartbeat", 160.0)]


def test_pause_keeps_the_playhead_and_beats_pause() -> None:
    t = Timeline(position_s=0.0, duration_s=20.0, actions=[Pause(at_s=1.0, for_s=5.0)])
    t.append(4.0)
    t.wait(4.0)  # 1 s play, 3 s paused
    assert t.position_s == pytest.approx(1.0) and t.paused_until is not None
    t.wait(4.0)  # 2 s more paused, then 2 s play
    assert t.position_s == pytest.approx(3.0) and t.stall_s == 0.0
    assert events(t) == [("start", 0.0), ("pause", 1.0), ("heartbeat", 1.0)]  # the last: resumed


def test_a_long_pause_beats_every_30_s_and_the_resume_beats_playing() -> None:
    # The sessions processor keeps a paused session live on its beats and counts viewing time
    # from a playing beat: without the resume beat, up to 30 s of play counted as paused.
    t = Timeline(position_s=0.0, duration_s=200.0, actions=[Pause(at_s=1.0, for_s=70.0)])
    t.append(40.0)
    t.wait(81.0)  # 1 s play, 70 s paused, 10 s play
    beats = [(b.event, b.state, round(b.at_s, 3)) for b in t.take_beats()]
    assert beats == [("start", "PLAYING", 0.0), ("pause", "PAUSED", 1.0), ("heartbeat", "PAUSED", 31.0),
                     ("heartbeat", "PAUSED", 61.0), ("heartbeat", "PLAYING", 71.0)]
    assert t.position_s == pytest.approx(11.0) and t.play_s == pytest.approx(11.0)


def test_seek_flushes_the_buffer_and_the_wait_for_data_is_not_a_stall() -> None:
    t = Timeline(position_s=0.0, duration_s=60.0, actions=[Seek(at_s=1.0, to_s=30.0)])
    t.append(4.0)
    t.wait(2.0)  # the seek at 1.0 s ends the wait there: the request in flight is dropped
    assert t.now_s == pytest.approx(1.0)
    assert t.take_seek() == 30.0 and t.take_seek() is None
    assert t.buffer_s == 0.0 and t.position_s == 30.0
    t.wait(1.5)
    t.append(2.0)
    t.wait(1.0)
    assert t.stall_s == 0.0 and t.seek_wait_s == pytest.approx(1.5)
    assert t.position_s == pytest.approx(31.0)
    assert events(t) == [("start", 0.0), ("seek", 30.0)]


def test_stop_at_a_position_ends_the_session_there() -> None:
    t = Timeline(position_s=0.0, duration_s=60.0, actions=[Stop(at_s=3.25)])
    t.append(6.0)
    t.wait(10.0)
    assert t.done and t.stopped and t.position_s == pytest.approx(3.25)
    beats = t.take_beats()
    assert [b.event for b in beats] == ["start", "stop"] and beats[-1].end_reason == "STOPPED"


def test_finish_plays_the_buffer_out_and_reports_the_end() -> None:
    t = Timeline(position_s=0.0, duration_s=5.0)
    t.append(2.0)
    t.append(2.0)
    t.append(1.0)
    t.finish()
    assert t.ended and t.position_s == pytest.approx(5.0) and t.play_s == pytest.approx(5.0)
    beats = t.take_beats()
    assert beats[-1].event == "stop" and beats[-1].end_reason == "ENDED"


def test_exit_before_the_end() -> None:
    t = Timeline(position_s=0.0, duration_s=60.0)
    t.append(2.0)
    t.wait(1.0)
    t.exit()
    assert [b.event for b in t.take_beats()] == ["start", "exit"] and t.done


def test_a_viewer_who_leaves_after_some_play_time_exits_there() -> None:
    t = Timeline(position_s=10.0, duration_s=60.0, leave_after_s=3.0)
    t.append(6.0)
    t.wait(5.0)
    assert t.stopped and t.play_s == pytest.approx(3.0) and t.position_s == pytest.approx(13.0)
    assert [(b.event, b.end_reason) for b in t.take_beats()] == [("start", None), ("exit", "EXIT")]
