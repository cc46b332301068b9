"""Which key provider packaging uses, chosen by configuration, never by code path:

- ``REEL_KEY_PROVIDER_URL`` unset: ReelStream's ``KeyService`` (needs ``REEL_KEK``).
- ``REEL_KEY_PROVIDER_URL=https://…/speke/v2/copyProtection``: a SPEKE v2.0 provider,
  ReelStream's own endpoint or a commercial DRM vendor's.

Both read from the process environment (or ``env``) and fail at start with the setting named.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlparse

from reelstream.errors import ConfigError
from reelstream.keys.kek import kek_from_setting
from reelstream.keys.service import KeyService
from reelstream.keys.speke.client import SpekeKeyProvider
from reelstream.runtime import Runtime


def key_service(runtime: Runtime, env: Mapping[str, str] | None = None) -> KeyService:
    """The key service, its KEK checked against the stored keys (``KekMismatch``)."""
    env = os.environ if env is None else env
    service = KeyService(runtime.state, kek_from_setting(env.get("REEL_KEK")), runtime.publish,
                         producer=runtime.settings.producer)
    service.check_kek()
    return service


def key_provider(runtime: Runtime, env: Mapping[str, str] | None = None,
                 scheme: str = "cenc") -> KeyService | SpekeKeyProvider:
    env = os.environ if env is None else env
    url = env.get("REEL_KEY_PROVIDER_URL")
    if not url:
        return key_service(runtime, env)
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"REEL_KEY_PROVIDER_URL = {url!r}: must be an http(s) URL of a SPEKE v2.0 endpoint")
    return SpekeKeyProvider(url, scheme=scheme, publish=runtime.publish, producer=runtime.settings.producer)
