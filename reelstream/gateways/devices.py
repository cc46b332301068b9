"""Device profiles the manifest gateway renders for: what each device type decodes, with
the registered DRM security level and the studio's resolution cap applied."""

from __future__ import annotations

from dataclasses import replace

from reelstream.media.package.hls import CHROMIUM_CLEARKEY, DeviceProfile

_BY_TYPE: dict[str, DeviceProfile] = {
    "tv": DeviceProfile("tv", frozenset({"avc1", "avc3", "hvc1", "hev1", "mp4a", "ec-3", "wvtt"}), 2160,
                        drm=("clearkey", "widevine", "playready")),
    "set-top-box": DeviceProfile("set-top-box", frozenset({"avc1", "avc3", "hvc1", "hev1", "mp4a", "ec-3", "wvtt"}),
                                 2160, drm=("clearkey", "widevine", "playready")),
    "console": DeviceProfile("console", frozenset({"avc1", "avc3", "hvc1", "hev1", "mp4a", "wvtt"}), 2160,
                             drm=("clearkey", "playready")),
    "phone": DeviceProfile("phone", frozenset({"avc1", "avc3", "hvc1", "mp4a", "wvtt"}), 1080,
                           drm=("clearkey", "widevine", "fairplay")),
    "tablet": DeviceProfile("tablet", frozenset({"avc1", "avc3", "hvc1", "mp4a", "wvtt"}), 1440,
                            drm=("clearkey", "widevine", "fairplay")),
    "browser": CHROMIUM_CLEARKEY,
}


def profile_for(device_type: str, security_level: str, studio_max_height: int,
                clearkey_security: str = "hardware") -> DeviceProfile:
    """``clearkey_security``: what the license server trusts Clear Key with (REEL_CLEARKEY_SECURITY);
    a device with no DRM but Clear Key gets no track whose key it would not be given."""
    base = _BY_TYPE.get(device_type, CHROMIUM_CLEARKEY)
    hardware = security_level == "hardware" and (base.drm != ("clearkey",) or clearkey_security == "hardware")
    return replace(base, security="hardware" if hardware else "software",
                   max_height=min(base.max_height, studio_max_height))
