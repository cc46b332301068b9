"""License policy: pure decisions over what the gateway read, with time passed in.

Each check returns a denial (a ``LicenseDenialReason`` symbol and a sentence for the
user) or None; ``decide_streaming`` and ``decide_download`` run them in a fixed order so
the reason reported is the most fundamental one (a title outside the territory is
``TERRITORY`` even if the account is also unentitled). No I/O, no clock: callers pass
``now_ms``; unit tests cover every branch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from reelstream.ingest.ratings import minimum_age

# The LicenseDenialReason symbols of the LicenseDenied event (less OTHER): the type checker
# holds every Denial to them, and a test holds them to the schema, so no refusal's event fails
# validation (which would turn the refusal into a 400).
DenialReason = Literal[
    "NO_ENTITLEMENT", "OUTSIDE_WINDOW", "RENTAL_EXPIRED", "TERRITORY", "SECURITY_LEVEL",
    "CONCURRENT_STREAMS", "DEVICE_LIMIT", "DOWNLOAD_NOT_ALLOWED", "DOWNLOAD_LIMIT", "UNKNOWN_KEY",
    "DOWNLOAD_RETURNED", "DOWNLOAD_UNKNOWN"]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
HARDWARE_ONLY_CLASSES = frozenset({"HD", "UHD"})  # issue #5: UHD/HD keys only to hardware-secure CDMs


@dataclass(frozen=True)
class Entitlement:
    entitlement_id: str
    kind: str  # SUBSCRIPTION | PURCHASE | RENTAL
    title_id: str | None  # None: a subscription covering the catalog
    starts_ms: int | None
    ends_ms: int | None
    revoked: bool = False

    def covers(self, title_id: str) -> bool:
        return self.title_id is None or self.title_id == title_id

    def active(self, now_ms: int) -> bool:
        return (not self.revoked and (self.starts_ms is None or self.starts_ms <= now_ms)
                and (self.ends_ms is None or now_ms < self.ends_ms))


@dataclass(frozen=True)
class TitleTerms:
    territories: frozenset[str]
    window_start_ms: int
    window_end_ms: int | None
    offline_download_allowed: bool
    max_height: int


@dataclass(frozen=True)
class Limits:
    max_streams: int = 3  # concurrent streams per account
    max_licensed_devices: int = 5  # distinct devices holding unexpired licenses per account
    max_downloads_per_account: int = 25
    max_downloads_per_device: int = 10
    streaming_license_ms: int = 6 * HOUR_MS
    download_license_ms: int = 30 * DAY_MS  # issue #5: persistent licenses, 30 days by default...
    download_playback_ms: int = 48 * HOUR_MS  # ...and 48 hours once playback starts


@dataclass(frozen=True)
class ActiveLicense:
    license_id: str
    device_id: str
    kind: str  # streaming | download
    expires_ms: int | None
    returned: bool = False

    def active(self, now_ms: int) -> bool:
        return not self.returned and (self.expires_ms is None or now_ms < self.expires_ms)


@dataclass(frozen=True)
class Request:
    """Everything a decision needs, read by the service before calling ``decide_*``."""

    now_ms: int
    title_id: str
    device_id: str
    security_level: str  # hardware | software
    country: str
    terms: TitleTerms
    entitlements: Sequence[Entitlement]
    key_classes: Mapping[str, str] = field(default_factory=dict)  # kid -> AUDIO/SD/HD/UHD
    other_live_devices: int = 0  # live sessions on the account's other devices
    licenses: Sequence[ActiveLicense] = ()  # the account's licenses (streaming and download)


@dataclass(frozen=True)
class Denial:
    reason: DenialReason
    detail: str


@dataclass(frozen=True)
class Grant:
    expires_ms: int
    entitlement_id: str
    key_ids: tuple[str, ...] = ()  # the requested keys the device may have, in request order
    withheld: tuple[tuple[str, str], ...] = ()  # (key id, reason) for requested keys it may not have


Decision = Grant | Denial


def check_territory(r: Request) -> Denial | None:
    if r.country not in r.terms.territories:
        return Denial("TERRITORY", f"title {r.title_id} is not available in {r.country}")
    return None


def check_window(r: Request) -> Denial | None:
    if r.now_ms < r.terms.window_start_ms:
        return Denial("OUTSIDE_WINDOW", f"title {r.title_id} is not available yet")
    if r.terms.window_end_ms is not None and r.now_ms >= r.terms.window_end_ms:
        return Denial("OUTSIDE_WINDOW", f"title {r.title_id} is no longer available")
    return None


def entitlement_for(r: Request) -> Entitlement | Denial:
    """The active entitlement that covers the title (the one lasting longest), or why none does."""
    covering = [e for e in r.entitlements if e.covers(r.title_id)]
    active = [e for e in covering if e.active(r.now_ms)]
    if active:
        return max(active, key=lambda e: e.ends_ms if e.ends_ms is not None else 2 ** 62)
    if any(e.kind == "RENTAL" and not e.revoked and e.ends_ms is not None and e.ends_ms <= r.now_ms
           for e in covering):
        return Denial("RENTAL_EXPIRED", f"the rental of {r.title_id} has expired; rent it again to watch")
    return Denial("NO_ENTITLEMENT", f"the account is not entitled to {r.title_id} (no active subscription, "
                                    "purchase or rental)")


def maturity_problem(title_id: str, rating: tuple[str, str] | None, max_age: int) -> str | None:
    """Why a profile may not play the title, or None: it plays titles whose rating's age band
    is at most its ``max_age``. A profile control, checked where a session or a download
    starts, not a license decision (no LicenseDenied reason of its own)."""
    age = minimum_age(*(rating or (None, None)))
    if age <= max_age:
        return None
    rated = f"rated {rating[1]} ({rating[0]}, {age}+)" if rating else f"not rated here (counted as {age}+)"
    return (f"title {title_id} is {rated}; this profile plays titles up to {max_age}+ (changing that needs the "
            "account's password)")


def split_keys(r: Request) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The requested keys the device may have (request order), and those withheld with why.

    As real license servers do, a request naming keys the device may not have (an HD key
    for a software-only CDM) gets the others; the player drops the renditions it has no
    key for."""
    if r.security_level == "hardware":
        return tuple(r.key_classes), ()
    allowed = tuple(k for k, c in r.key_classes.items() if c not in HARDWARE_ONLY_CLASSES)
    withheld = tuple((k, "SECURITY_LEVEL") for k, c in r.key_classes.items() if c in HARDWARE_ONLY_CLASSES)
    return allowed, withheld


def check_security(r: Request) -> Denial | None:
    """A denial only when every requested key is withheld."""
    allowed, withheld = split_keys(r)
    if withheld and not allowed:
        refused = "/".join(sorted({r.key_classes[k] for k, _ in withheld}))
        return Denial("SECURITY_LEVEL", f"{refused} keys are released only to hardware-secure "
                                        f"devices; this device's CDM is software-only (SD and audio are allowed)")
    return None


def check_devices(r: Request, limits: Limits) -> Denial | None:
    others = {lic.device_id for lic in r.licenses if lic.active(r.now_ms) and lic.device_id != r.device_id}
    if len(others) >= limits.max_licensed_devices:
        return Denial("DEVICE_LIMIT", f"{len(others)} other devices hold licenses on this account, the most "
                                      f"allowed is {limits.max_licensed_devices}; return a download or wait")
    return None


def check_streams(r: Request, limits: Limits) -> Denial | None:
    if r.other_live_devices >= limits.max_streams:
        return Denial("CONCURRENT_STREAMS", f"{r.other_live_devices} other streams are playing on this account; "
                                            f"the plan allows {limits.max_streams} at once. Stop one to watch here")
    return None


def _common(r: Request, limits: Limits) -> Entitlement | Denial:
    for check in (check_territory, check_window):
        if (denial := check(r)) is not None:
            return denial
    found = entitlement_for(r)
    if isinstance(found, Denial):
        return found
    for denial in (check_security(r), check_devices(r, limits)):
        if denial is not None:
            return denial
    return found


def _capped(expiry_ms: int, entitlement: Entitlement, terms: TitleTerms) -> int:
    caps = [c for c in (entitlement.ends_ms, terms.window_end_ms) if c is not None]
    return min([expiry_ms, *caps])


def decide_streaming(r: Request, limits: Limits) -> Decision:
    found = _common(r, limits)
    if isinstance(found, Denial):
        return found
    if (denial := check_streams(r, limits)) is not None:
        return denial
    return Grant(_capped(r.now_ms + limits.streaming_license_ms, found, r.terms), found.entitlement_id,
                 *split_keys(r))


def check_offline_allowed(r: Request) -> Denial | None:
    if not r.terms.offline_download_allowed:
        return Denial("DOWNLOAD_NOT_ALLOWED", f"the studio's terms do not allow downloading {r.title_id}")
    return None


def decide_download(r: Request, limits: Limits) -> Decision:
    if (denial := check_offline_allowed(r)) is not None:
        return denial
    found = _common(r, limits)
    if isinstance(found, Denial):
        return found
    downloads = [lic for lic in r.licenses if lic.kind == "download" and lic.active(r.now_ms)]
    on_device = [lic for lic in downloads if lic.device_id == r.device_id]
    if len(downloads) >= limits.max_downloads_per_account:
        return Denial("DOWNLOAD_LIMIT", f"the account has {len(downloads)} downloads, the most allowed; "
                                        "return one first")
    if len(on_device) >= limits.max_downloads_per_device:
        return Denial("DOWNLOAD_LIMIT", f"this device has {len(on_device)} downloads, the most allowed; "
                                        "return one first")
    return Grant(_capped(r.now_ms + limits.download_license_ms, found, r.terms), found.entitlement_id)


@dataclass(frozen=True)
class OfflineLicense:
    """What a device keeps for a download: enforced by the player while offline."""

    license_id: str
    expires_ms: int
    playback_window_ms: int
    first_played_ms: int | None = None


def offline_expiry(lic: OfflineLicense) -> int:
    """30 days (or the entitlement's end) from issue, and at most 48 h after the first play."""
    if lic.first_played_ms is None:
        return lic.expires_ms
    return min(lic.expires_ms, lic.first_played_ms + lic.playback_window_ms)


def offline_playable(lic: OfflineLicense, now_ms: int) -> Denial | None:
    if now_ms >= offline_expiry(lic):
        return Denial("RENTAL_EXPIRED", "the downloaded license has expired; connect to renew it")
    return None


def licenses_of(rows: Iterable[Mapping[str, object]]) -> list[ActiveLicense]:
    """``ActiveLicense`` values from the licenses view's rows."""
    return [ActiveLicense(str(v["license_id"]), str(v["device_id"]), str(v["kind"]),
                          v.get("expires_ms"), bool(v.get("returned")))  # type: ignore[arg-type]
            for v in rows]


def check_download(download: ActiveLicense | None, license_id: str | None, device_id: str,
                   now_ms: int) -> Denial | None:
    """Whether a download ticket may still have keys (persistent, or temporary for online
    play of the download): only while its download is licensed to that device. A ticket
    outlives a return (it is valid until the license would have expired), so without this
    a returned download's ticket would keep getting keys, and returning downloads would
    lift the per-device download limit."""
    relicense = "license the title again (POST /downloads/licenses)"
    if download is None or download.kind != "download":
        return Denial("DOWNLOAD_UNKNOWN", f"this account has no download {license_id}; if it was licensed a "
                                          f"moment ago retry in a few seconds, otherwise {relicense}")
    if download.device_id != device_id:
        return Denial("DOWNLOAD_UNKNOWN", f"download {license_id} belongs to another device; {relicense} "
                                          "on this device")
    if download.returned:
        return Denial("DOWNLOAD_RETURNED", f"download {license_id} was returned; {relicense} to watch it")
    if download.expires_ms is not None and now_ms >= download.expires_ms:
        # The code offline_playable gives the same condition on the device.
        return Denial("RENTAL_EXPIRED", f"the license of download {license_id} has expired; renew it "
                                        f"(POST /downloads/licenses/{license_id}/renew)")
    return None


def decide_offline_keys(r: Request, limits: Limits, license_expires_ms: int) -> Decision:
    """Keys for a download already licensed (``decide_download``; its row checked by
    ``check_download``): refused once the studio withdraws offline rights, as a new
    download would be; the same territory, window, entitlement and security checks; never
    past the download license's own expiry."""
    if (denial := check_offline_allowed(r)) is not None:
        return denial
    found = _common(r, limits)
    if isinstance(found, Denial):
        return found
    return Grant(_capped(min(license_expires_ms, r.now_ms + limits.download_license_ms), found, r.terms),
                 found.entitlement_id, *split_keys(r))
