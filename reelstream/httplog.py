"""Malformed requests are the internet's background noise, not server errors.

aiohttp answers a request it cannot parse (a request line over 8 KB, a bad header, a
scanner's garbage) with a 400 itself, and logs it at ERROR with a full traceback on the
``aiohttp.server`` logger: a public gateway's log fills with tracebacks that are no fault
of ours, and an alert on ERROR fires all day. ``quiet_malformed_requests`` turns those
records into one WARNING line without a traceback, at most one per ``interval_s`` (the
next line counts the ones left out). Every other record of that logger passes unchanged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class MalformedRequests(logging.Filter):
    def __init__(self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._clock = clock
        self._last = -float("inf")
        self._left_out = 0

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        now = self._clock()
        if now - self._last < self.interval_s:
            self._left_out += 1
            return False
        more = f" (and {self._left_out} more since the last such line)" if self._left_out else ""
        self._last, self._left_out = now, 0
        message = str(error.message).splitlines()[0][:160] if error.message else type(error).__name__
        record.msg, record.args = "malformed request answered with %s: %s%s", (error.code, message, more)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        return True


def quiet_malformed_requests(interval_s: float = 10.0) -> MalformedRequests:
    """Install the filter on aiohttp's server logger (once per process); returns it."""
    logger = logging.getLogger(SERVER_LOGGER)
    for existing in logger.filters:
        if isinstance(existing, MalformedRequests):
            return existing
    installed = MalformedRequests(interval_s)
    logger.addFilter(installed)
    return installed
