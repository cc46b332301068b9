"""Listen addresses: the one a server binds, the one this machine reaches it at, and how
either is written in a URL or an nginx ``listen``."""

from __future__ import annotations

import ipaddress

from reelstream.errors import ConfigError


def check_bind(address: str, setting: str = "REEL_EDGE_HOST or --host") -> str:
    """``address`` when it is an IP address to listen on; ConfigError naming ``setting`` else."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        raise ConfigError(f"{setting} = {address!r}: not an IP address; use 127.0.0.1 (this machine only), "
                          "0.0.0.0 (every interface, as in a container) or one of this machine's addresses") from None


def reach_host(bind: str) -> str:
    """Where a process on this machine connects to a listener bound to ``bind``: the loopback
    for a wildcard (0.0.0.0 is no destination), ``bind`` itself otherwise."""
    address = ipaddress.ip_address(bind)
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return bind


def url_host(address: str) -> str:
    """``address`` as the host part of a URL or an nginx ``listen`` (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address
