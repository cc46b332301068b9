"""Gateway settings: ``REEL_*`` environment variables, typed and validated at start.

Each field's docstring names its variable. A bad value fails at start with the
variable's name and what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any

from reelstream.edge.steering import check_steering
from reelstream.errors import ConfigError
from reelstream.gateways.policy import Limits
from reelstream.identity.tokens import KeyRing


@dataclass(frozen=True)
class GatewaySettings:
    signing_keys: str = ""
    """REEL_GATEWAY_SIGNING_KEYS: ``kid:base64secret[,...]``, newest first; secrets >= 32 bytes.
    Tokens are signed with the first key; every listed key verifies (rotation)."""
    edge_secret: str = ""
    """REEL_EDGE_SECRET: the secret shared with the nginx edge for ``secure_link_md5``."""
    edge_base_url: str = "http://127.0.0.1:8080"
    """REEL_EDGE_BASE_URL: where signed segment URLs point (the CDN / nginx edge)."""
    edge_pathways: str = ""
    """REEL_EDGE_PATHWAYS: content-steering pathways ``name=http://host:port,...`` (edge nodes, the
    default first; ``reel up`` sets it). With REEL_STEERING_URL, manifests name every one with its
    own signed URLs and the players ask the steering server which to use ("" = REEL_EDGE_BASE_URL only)."""
    steering_url: str = ""
    """REEL_STEERING_URL: the content steering server's base URL (``reel edge up`` prints it)."""
    isp_header: str = "X-Client-ISP"
    """REEL_ISP_HEADER: header carrying the viewer's ISP, set by the trusted edge/LB (steering)."""
    default_isp: str = ""
    """REEL_DEFAULT_ISP: the viewer's ISP when the header is absent ("" = none: no appliance)."""
    license_base_url: str = ""
    """REEL_LICENSE_BASE_URL: public URL of the license gateway written into manifests
    ("" = the same origin as the manifest request)."""
    country_header: str = "X-Client-Country"
    """REEL_COUNTRY_HEADER: header carrying the client's ISO country, set by the trusted edge/LB."""
    default_country: str = ""
    """REEL_DEFAULT_COUNTRY: the country when the header is absent ("" = refuse such requests)."""
    trusted_proxies: str = ""
    """REEL_TRUSTED_PROXIES: the load balancers or edges that set the country and ISP headers, as
    comma-separated addresses or networks (``10.0.0.0/8,2001:db8::/32``); those headers from any
    other client are ignored (its country is REEL_DEFAULT_COUNTRY, else refused). Empty: every
    client's headers are believed, and territories are only as good as the client's word: for
    development only, and the gateway says so at start."""
    session_ttl_s: int = 12 * 3600
    """REEL_SESSION_TTL_S: lifetime of a session token."""
    ticket_ttl_s: int = 6 * 3600
    """REEL_TICKET_TTL_S: lifetime of a playback ticket (manifest, license and segment URLs)."""
    max_streams: int = 3
    """REEL_MAX_STREAMS: concurrent streams per account."""
    max_devices: int = 10
    """REEL_MAX_DEVICES: active registered devices per account."""
    max_licensed_devices: int = 5
    """REEL_MAX_LICENSED_DEVICES: distinct devices holding unexpired licenses per account."""
    max_downloads_per_account: int = 25
    """REEL_MAX_DOWNLOADS_PER_ACCOUNT: active offline downloads per account."""
    max_downloads_per_device: int = 10
    """REEL_MAX_DOWNLOADS_PER_DEVICE: active offline downloads per device."""
    max_body_bytes: int = 64 * 1024
    """REEL_MAX_BODY_BYTES: the largest request body a gateway reads (413 above)."""
    max_pending_sign_ins: int = 16
    """REEL_MAX_PENDING_SIGN_INS: sign-ins and sign-ups (one scrypt each) an instance takes at once,
    on its own two threads; one more is refused with 503 and Retry-After (``gateways.passwords``)."""
    live_sessions_refresh_s: int = 5
    """REEL_LIVE_SESSIONS_REFRESH_S: the license server keeps an account's live sessions current by
    folding reel.sessions; when its concurrent-stream check hangs on sessions the fold cannot
    see into (possibly lapsed), rows read less than this long ago are used as they are, older
    ones are read again first (a state-store query; the count lags by at most this much)."""
    clearkey_security: str = "software"
    """REEL_CLEARKEY_SECURITY: the security level a Clear Key license is trusted with, whatever the
    device registered: ``software`` (Clear Key's keys reach JavaScript, so HD and UHD keys go
    only through a vendor DRM) or ``hardware``, only to exercise HD keys without a vendor
    (development, tests): it releases every key to anyone who registers a "hardware" device."""
    widevine_proxy_url: str = ""
    """REEL_WIDEVINE_PROXY_URL: the vendor's license proxy endpoint ("" = no Widevine: /licenses/widevine 404)."""
    widevine_provider: str = ""
    """REEL_WIDEVINE_PROVIDER: the provider name the vendor issued (signs and names proxy requests)."""
    widevine_signing_key: str = ""
    """REEL_WIDEVINE_SIGNING_KEY: the provider's AES-256 signing key and IV, hex, as ``KEY:IV``."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (not isinstance(value, int) or value <= 0):
                raise ConfigError(f"REEL_{f.name.upper()} = {value!r}: must be a positive integer")
        if not self.edge_secret or len(self.edge_secret) < 16:
            raise ConfigError("REEL_EDGE_SECRET: set a secret of at least 16 characters, shared with the edge")
        self.proxy_networks()  # a bad address fails at start, named
        if self.clearkey_security not in ("software", "hardware"):
            raise ConfigError(f"REEL_CLEARKEY_SECURITY = {self.clearkey_security!r}: must be software or hardware")
        KeyRing.from_setting(self.signing_keys)  # fails with the variable named
        self.drm_adapters()  # a bad vendor setting fails at start, named
        check_steering(self.edge_pathways, self.steering_url)  # fails with the variable named

    def proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        try:
            return tuple(ip_network(item.strip(), strict=False) for item in self.trusted_proxies.split(",")
                         if item.strip())
        except ValueError as e:
            raise ConfigError(f"REEL_TRUSTED_PROXIES = {self.trusted_proxies!r}: {e}") from None

    def drm_adapters(self) -> dict[str, Any]:
        """The license server's DRM adapters: Clear Key always, vendors in proxy mode when configured."""
        from reelstream.gateways.drm import ClearKeyAdapter
        from reelstream.gateways.widevine import WidevineProxyAdapter

        adapters: dict[str, Any] = {"clearkey": ClearKeyAdapter(self.clearkey_security)}
        if self.widevine_proxy_url:
            adapters["widevine"] = WidevineProxyAdapter.from_settings(
                self.widevine_proxy_url, self.widevine_provider, self.widevine_signing_key)
        return adapters

    @property
    def limits(self) -> Limits:
        return Limits(max_streams=self.max_streams, max_licensed_devices=self.max_licensed_devices,
                      max_downloads_per_account=self.max_downloads_per_account,
                      max_downloads_per_device=self.max_downloads_per_device)


def load_gateway_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> GatewaySettings:
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(GatewaySettings):
        raw = env.get(f"REEL_GATEWAY_{f.name.upper()}") if f.name == "signing_keys" else env.get(f"REEL_{f.name.upper()}")
        if raw is None or raw == "":
            continue
        if f.type == "int":
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise ConfigError(f"REEL_{f.name.upper()} = {raw!r}: must be an integer") from None
        else:
            values[f.name] = raw
    return GatewaySettings(**{**values, **overrides})
