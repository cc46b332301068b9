"""The player's virtual clock: playhead, buffer, stalls, pauses, seeks and heartbeats.

A pure state machine; nothing here does I/O or reads a clock. The session tells it how
long each request took (:meth:`Timeline.wait`) and what arrived (:meth:`Timeline.append`);
the timeline plays the buffer out meanwhile, stalls when it runs dry, carries out the
scripted viewer actions when the playhead reaches them, and queues the heartbeats a
player owes the playback gateway: one every ``heartbeat_s`` of play time (as
``reelstream/web/app.js`` does every 30 s), every ``heartbeat_s`` of wall time while paused,
and one on start, pause, resume, seek and stop.

Times: ``now_s`` is virtual wall time since the viewer pressed play; positions are
media time. Playback starts (first frame) once ``start_buffer_s`` is buffered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

BeatEvent = Literal["start", "heartbeat", "seek", "pause", "stop", "exit"]

# The clock's resolution: a shorter wait passes no time. Levels reached by adding and taking
# float seconds are off by less than this (2.0 s idled down to 0.6 s leaves 0.6000000000000001 s).
TICK_S = 1e-9


@dataclass(frozen=True)
class Seek:
    """When the playhead reaches ``at_s``, jump to ``to_s`` (the buffer is flushed)."""

    at_s: float
    to_s: float


@dataclass(frozen=True)
class Pause:
    """When the playhead reaches ``at_s``, pause for ``for_s`` seconds of wall time."""

    at_s: float
    for_s: float


@dataclass(frozen=True)
class Stop:
    """When the playhead reaches ``at_s``, stop (the viewer leaves; the position is saved)."""

    at_s: float


Action = Seek | Pause | Stop


@dataclass(frozen=True)
class Beat:
    """A heartbeat the player owes the gateway, stamped in virtual time."""

    event: BeatEvent
    position_s: float
    at_s: float
    rebuffer_s: float  # stall time since the previous beat
    state: str
    end_reason: str | None = None


@dataclass
class Timeline:
    """Playhead and buffer on a virtual clock.

    ``position_s`` starts at the resume point; ``buffer_s`` is media buffered ahead of it.
    """

    position_s: float
    duration_s: float
    actions: Sequence[Action] = ()
    start_buffer_s: float = 2.0
    heartbeat_s: float = 30.0
    leave_after_s: float | None = None  # the viewer exits after this much play time
    now_s: float = 0.0
    buffer_s: float = 0.0
    started: bool = False
    startup_s: float | None = None
    stall_s: float = 0.0  # rebuffering after the first frame (seeks excluded)
    seek_wait_s: float = 0.0
    play_s: float = 0.0
    paused_until: float | None = None
    ended: bool = False
    stopped: bool = False
    seeking: bool = False
    beats: list[Beat] = field(default_factory=list)
    _pending: list[Action] = field(default_factory=list)
    _next_beat_s: float = 0.0
    _paused_beat_at: float = 0.0  # wall time of the next beat while paused
    _stall_since_beat: float = 0.0
    _seek_to: float | None = None

    def __post_init__(self) -> None:
        self._pending = sorted((a for a in self.actions if a.at_s >= self.position_s), key=lambda a: a.at_s)
        self._next_beat_s = self.heartbeat_s

    # ------------------------------------------------------------------ what the session reads

    @property
    def done(self) -> bool:
        return self.ended or self.stopped

    def take_seek(self) -> float | None:
        """The position a seek jumped to since the last call (the session refetches from it)."""
        to, self._seek_to = self._seek_to, None
        return to

    def take_beats(self) -> list[Beat]:
        out, self.beats = self.beats, []
        return out

    # ------------------------------------------------------------------ what the session reports

    def wait(self, seconds: float) -> None:
        """``seconds`` of wall time pass (a request in flight, or idling on a full buffer):
        play, stall or stay paused. A seek ends the wait there: the player drops what it
        was waiting for and fetches from the new position."""
        remaining = seconds
        was_seeking = self.seeking
        while remaining > TICK_S and not self.done:
            remaining -= self._step(remaining)
            if self.seeking and not was_seeking:
                return

    def append(self, media_s: float) -> None:
        """A chunk of ``media_s`` seconds landed in the buffer."""
        self.buffer_s += media_s
        if not self.started and self.buffer_s > 0 and self.buffer_s >= min(self.start_buffer_s,
                                                                            self.duration_s - self.position_s):
            self._start()
        elif self.seeking and self.buffer_s > 0:
            self.seeking = False

    def _start(self) -> None:
        self.started = True
        self.startup_s = self.now_s
        self.beats.append(self._beat("start", "PLAYING"))

    def finish(self) -> None:
        """Every chunk is in: play the buffer out to the end, a stop, or a seek (after
        which the session fetches again from :meth:`take_seek`)."""
        if not self.started and self.buffer_s > 0:
            self._start()  # less than the start threshold was left to fetch
        while not self.done and not self.seeking:
            if self.buffer_s <= 1e-9 and self.paused_until is None:
                self.ended = True
                self.position_s = min(self.position_s, self.duration_s)
                self.beats.append(self._beat("stop", "STOPPED", end_reason="ENDED"))
                return
            self._step(self.buffer_s + (self._pause_left() or 0.0))

    def exit(self) -> None:
        """The viewer closed the player before the end."""
        if not self.done:
            self.stopped = True
            self.beats.append(self._beat("exit", "STOPPED", end_reason="EXIT"))

    # ------------------------------------------------------------------ the clock

    def _pause_left(self) -> float | None:
        return None if self.paused_until is None else max(0.0, self.paused_until - self.now_s)

    def _step(self, budget: float) -> float:
        """Advance by at most ``budget`` seconds, up to the next thing that happens."""
        pause_left = self._pause_left()
        if pause_left is not None:
            spent = min(budget, pause_left, max(0.0, self._paused_beat_at - self.now_s))
            self.now_s += spent
            if self.now_s >= self.paused_until - 1e-9:  # type: ignore[operator]
                self.paused_until = None
                # Resumed: the sessions processor counts viewing time from a playing beat, so
                # without this one the play up to the next 30-s beat would count as paused.
                self.beats.append(self._beat("heartbeat", "PLAYING"))
            elif self.now_s >= self._paused_beat_at - 1e-9:
                self._paused_beat_at += self.heartbeat_s  # beats go on while paused: still live
                self.beats.append(self._beat("heartbeat", "PAUSED"))
            return spent
        if not self.started or self.seeking:
            self.now_s += budget
            if self.seeking:
                self.seek_wait_s += budget
            return budget
        if self.buffer_s <= 1e-9:
            self.now_s += budget
            self.stall_s += budget
            self._stall_since_beat += budget
            return budget
        to_action = self._pending[0].at_s - self.position_s if self._pending else float("inf")
        to_beat = self._next_beat_s - self.play_s
        to_leave = self.leave_after_s - self.play_s if self.leave_after_s is not None else float("inf")
        spent = max(0.0, min(budget, self.buffer_s, to_action, to_beat, to_leave))
        self.now_s += spent
        self.position_s += spent
        self.buffer_s -= spent
        self.play_s += spent
        if self.play_s >= self._next_beat_s - 1e-9:
            self._next_beat_s += self.heartbeat_s
            self.beats.append(self._beat("heartbeat", "PLAYING"))
        if self._pending and self.position_s >= self._pending[0].at_s - 1e-9:
            self._act(self._pending.pop(0))
        if self.leave_after_s is not None and self.play_s >= self.leave_after_s - 1e-9:
            self.exit()
        return spent if spent > 0 else min(budget, 1e-6)

    def _act(self, action: Action) -> None:
        if isinstance(action, Pause):
            self.paused_until = self.now_s + action.for_s
            self._paused_beat_at = self.now_s + self.heartbeat_s
            self.beats.append(self._beat("pause", "PAUSED"))
        elif isinstance(action, Seek):
            self.position_s = min(max(0.0, action.to_s), self.duration_s)
            self.buffer_s = 0.0
            self.seeking = True
            self._seek_to = self.position_s
            self._pending = [a for a in self._pending if a.at_s >= self.position_s]
            self.beats.append(self._beat("seek", "SEEKING"))
        else:
            self.stopped = True
            self.beats.append(self._beat("stop", "STOPPED", end_reason="STOPPED"))

    def _beat(self, event: BeatEvent, state: str, end_reason: str | None = None) -> Beat:
        beat = Beat(event, self.position_s, self.now_s, self._stall_since_beat, state, end_reason)
        self._stall_since_beat = 0.0
        return beat
