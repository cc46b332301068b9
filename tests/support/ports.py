"""Loopback ports for servers a test starts (free when asked; the test binds them next)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port the kernel has just handed out and released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(n: int) -> int:
    """A base port with ``n`` free consecutive ports (nginx binds them right after)."""
    for _ in range(50):
        base = free_port()
        if base + n < 65000 and all(_free(base + i) for i in range(n)):
            return base
    raise RuntimeError(f"no block of {n} free consecutive ports on 127.0.0.1")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
