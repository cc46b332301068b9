"""Failed sign-ins per email, so that one account's password is not guessed at the pace the
password threads allow (two scrypts at a time: about three million guesses a day per
instance). After ``limit`` failures within ``window_s`` the email's sign-ins are refused
(429, Retry-After) until the oldest of them is ``window_s`` old; a success clears its
count. Per instance, in memory: a guesser spread over N instances gets N times the limit,
still nothing like the unthrottled pace. The owner signing in during an attack waits too,
which is the usual price of an account lock-out."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from reelstream.gateways.errors import TooManyAttempts


class SignInThrottle:
    def __init__(self, limit: int = 10, window_s: float = 900.0, capacity: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._capacity = capacity
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, email: object, attempts: str = "failed sign-ins for this email") -> None:
        """TooManyAttempts when ``email`` has failed ``limit`` times within the window;
        ``attempts`` names what failed, in its message."""
        recent = self._recent(_key(email))
        if recent is not None and len(recent) >= self.limit:
            wait = math.ceil(recent[0] + self.window_s - self._clock())
            raise TooManyAttempts(f"{len(recent)} {attempts} in the last "
                                  f"{int(self.window_s // 60)} minutes; try again in {wait} s", max(1, wait))

    def failed(self, email: object) -> None:
        key = _key(email)
        recent = self._recent(key) or deque()
        recent.append(self._clock())
        while len(recent) > self.limit:
            recent.popleft()
        self._failures[key] = recent
        self._failures.move_to_end(key)
        while len(self._failures) > self._capacity:
            self._failures.popitem(last=False)

    def succeeded(self, email: object) -> None:
        self._failures.pop(_key(email), None)

    def _recent(self, key: str) -> deque[float] | None:
        recent = self._failures.get(key)
        if recent is None:
            return None
        cutoff = self._clock() - self.window_s
        while recent and recent[0] <= cutoff:
            recent.popleft()
        if not recent:
            del self._failures[key]
            return None
        return recent


def _key(email: object) -> str:
    return str(email).strip().lower()
