"""Password work on threads of its own, with a bounded queue.

Sign-up and sign-in each cost one scrypt (~50 ms of CPU and 16 MiB, ``identity.accounts``),
an unknown email included (so timing does not tell which emails have accounts). They ran
on asyncio's default executor, the few threads every other gateway call shares (manifest
rendering, license-cache misses, resume reads): wrong-password sign-ins, which need no
account, queued ahead of them, and 50 of them in a loop made every signed-in read wait
1-2 s; 200 stalled the gateway for over a minute. Here at most ``PASSWORD_THREADS`` run at
once, and a sign-in arriving while ``max_pending`` wait is refused at once (503 with
Retry-After) instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from reelstream.gateways.errors import Busy

# Two scrypts at once: a flood takes at most two cores' worth of hashing, and an honest
# sign-in waits behind at most ``max_pending`` others (~0.4 s at the default 16).
PASSWORD_THREADS = 2
RETRY_AFTER_S = 1

_T = TypeVar("_T")


class PasswordWork:
    """Runs password hashing calls (sign-up, sign-in) on their own threads."""

    def __init__(self, max_pending: int, threads: int = PASSWORD_THREADS) -> None:
        self.max_pending = max_pending
        self.pending = 0
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="password-hash")

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` on a password thread; Busy when ``max_pending`` calls are already in."""
        if self.pending >= self.max_pending:
            raise Busy(f"{self.pending} sign-ins and sign-ups are being checked, the most this gateway takes at "
                       f"once; retry in {RETRY_AFTER_S} s", RETRY_AFTER_S)
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))
        finally:
            self.pending -= 1  # a client that hung up leaves too: its queued hash is cancelled with it

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
