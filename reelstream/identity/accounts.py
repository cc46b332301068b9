"""Accounts, profiles and devices, kept as views in the StateStore (Cassandra or SQLite).

Written directly by the auth gateway, like the key service's ``content_keys``: these are
operational records, not facts analytics replays. Passwords are stored as scrypt hashes
(RFC 7914) with a per-account salt.

A device is registered with a type (``tv``, ``phone``, ``browser``...) and the DRM
security level of its CDM: ``hardware`` (a TEE-backed CDM, Widevine L1 / PlayReady SL3000)
or ``software`` (Widevine L3, Clear Key). In proxy mode the vendor's license service
reports the level it observed; the registered level is the upper bound ReelStream allows.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, get_args

from reelstream.errors import ReelStreamError, StateStoreError
from reelstream.stores.ports import Column, Row, StateStore, ViewSpec

SecurityLevel = Literal["hardware", "software"]
SECURITY_LEVELS: tuple[SecurityLevel, ...] = get_args(SecurityLevel)
DeviceType = Literal["tv", "phone", "tablet", "browser", "console", "set-top-box"]
DEVICE_TYPES: tuple[DeviceType, ...] = get_args(DeviceType)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")

# Partition key: account_id. Read on every sign-in.
ACCOUNTS = ViewSpec(
    name="accounts", partition_key=("account_id",), clustering_key=(),
    columns={"account_id": Column.TEXT, "email": Column.TEXT, "password": Column.TEXT, "country": Column.TEXT,
             "profiles": Column.JSON, "created_ms": Column.BIGINT},
    query="an account with its profiles, by account id")
# Partition key: email. Sign-in names an email; this maps it to the account. Sign-up
# claims the email here (put_if_absent) before it writes the account: the claim is what
# makes an email's account unique. ``claimed_ms`` is None on rows older than the claim;
# ``password`` (the hash) lets the same sign-up's retry finish an account its first try
# claimed but never wrote, and is None on rows older than that.
ACCOUNT_EMAILS = ViewSpec(
    name="account_emails", partition_key=("email",), clustering_key=(),
    columns={"email": Column.TEXT, "account_id": Column.TEXT, "claimed_ms": Column.BIGINT, "password": Column.TEXT},
    query="the account of an email address")
# Partition key: account_id; clustering: device_id. Device limits count one partition.
DEVICES = ViewSpec(
    name="devices", partition_key=("account_id",), clustering_key=("device_id",),
    columns={"account_id": Column.TEXT, "device_id": Column.TEXT, "name": Column.TEXT, "device_type": Column.TEXT,
             "security_level": Column.TEXT, "registered_ms": Column.BIGINT, "active": Column.BOOLEAN},
    query="the devices registered to an account")
VIEWS = (ACCOUNTS, ACCOUNT_EMAILS, DEVICES)


class IdentityError(ReelStreamError):
    """Root of the identity errors."""


class InvalidIdentityInput(IdentityError):
    """A field of a sign-up, profile or device registration is missing or malformed (400)."""


class AuthenticationFailed(IdentityError):
    """Email and password do not match an account (401; the message never says which)."""


class PasswordRequired(AuthenticationFailed):
    """A change that widens what a profile may watch was asked for without the account's
    password (401, as a wrong one: the client asks the person for it)."""


class AccountExists(IdentityError):
    """Sign-up with an email that already has an account (409)."""


class AccountContended(StateStoreError):
    """An account changed under every one of our compare-and-set tries (503: retry). Not
    expected in practice: each lost try means another request's change landed."""


class UnknownDevice(IdentityError):
    """The device is not registered to the account, or was removed (403)."""


class UnknownProfile(IdentityError):
    """The account has no profile of that id (404)."""


class DeviceLimitReached(IdentityError):
    """The account already has its maximum number of active devices (409); remove one first."""


@dataclass(frozen=True)
class Profile:
    profile_id: str
    name: str
    max_age: int = 18  # the oldest age band of titles it may play (a kids' profile: 7); 18: all


@dataclass(frozen=True)
class Account:
    account_id: str
    email: str
    country: str
    profiles: tuple[Profile, ...]


@dataclass(frozen=True)
class Device:
    account_id: str
    device_id: str
    name: str
    device_type: DeviceType
    security_level: SecurityLevel
    registered_ms: int
    active: bool = True


MAX_PROFILES = 5
AGE_BANDS = (0, 7, 13, 16, 18)  # All, 7+, 13+, 16+, 18+ (``ingest.ratings`` places each rating in one)
MAX_PROFILE_NAME = 64
# An email claimed this long ago whose account row was never written is free again: the
# sign-up that claimed it failed between its two writes (a request lasts seconds, so a
# claimant still running after this is not a case worth locking the email out for).
CLAIM_EXPIRY_MS = 10 * 60 * 1000
_PROFILE_TRIES = 2 * MAX_PROFILES  # each lost try is another profile added: the limit ends it sooner

# Checked against for an email with no account, so that sign-in costs one scrypt either way
# and its timing does not tell which emails have accounts. Well formed (a 16-byte salt, a
# 32-byte digest, as ``hash_password`` writes) so ``check_password`` runs the full scrypt;
# no password is known to derive this digest.
_NO_ACCOUNT_HASH = f"scrypt${'00' * 16}${'00' * 32}"


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2 ** 14, r=8, p=1, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
        expected = hash_password(password, bytes.fromhex(salt)).split("$")[2]
    except ValueError:
        return False
    return hmac.compare_digest(expected, digest)


def _age_band(max_age: object) -> int:
    if isinstance(max_age, bool) or max_age not in AGE_BANDS:
        raise InvalidIdentityInput(f"max_age must be one of {', '.join(map(str, AGE_BANDS))} (18: every title)")
    return int(max_age)


def _profile_name(name: object) -> str:
    """One rule for the first profile (at sign-up) and for those added later."""
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= MAX_PROFILE_NAME:
        raise InvalidIdentityInput(f"profile name must be 1 to {MAX_PROFILE_NAME} characters")
    return name.strip()


class IdentityStore:
    """Accounts, profiles and devices. ``clock_ms`` is injected."""

    def __init__(self, state: StateStore, clock_ms: Callable[[], int], max_devices: int = 10) -> None:
        self._state = state
        self._clock_ms = clock_ms
        self.max_devices = max_devices
        state.ensure_views(VIEWS)

    def create_account(self, email: str, password: str, country: str, profile_name: str = "main") -> Account:
        email = email.strip().lower() if isinstance(email, str) else ""
        if not _EMAIL.match(email):
            raise InvalidIdentityInput("email must look like name@domain")
        if not isinstance(password, str) or len(password) < 8 or len(password) > 256:
            raise InvalidIdentityInput("password must be 8 to 256 characters")
        if not isinstance(country, str) or not _COUNTRY.match(country):
            raise InvalidIdentityInput("country must be an ISO 3166-1 alpha-2 code such as 'US'")
        account = Account(f"acc-{uuid.uuid4().hex[:16]}", email, country,
                          (Profile("p-main", _profile_name(profile_name)),))
        password_hash = hash_password(password)  # before the claim: it takes ~50 ms of CPU
        now = self._clock_ms()
        # The claim decides between concurrent sign-ups (a read then a write let each of
        # them see no account and write its own); only its winner writes the account.
        claim = Row({"email": email, "account_id": account.account_id, "claimed_ms": now, "password": password_hash})
        if not self._state.put_if_absent(ACCOUNT_EMAILS, claim):
            if (unfinished := self._own_unfinished_claim(email, password)) is not None:
                account = replace(account, account_id=unfinished)
            elif not self._reclaim(claim):
                raise AccountExists(f"an account with {email} exists; sign in instead")
        self._state.put(ACCOUNTS, Row({"account_id": account.account_id, "email": email,
                                       "password": password_hash, "country": country,
                                       "profiles": [p.__dict__ for p in account.profiles],
                                       "created_ms": now}))
        return account

    def _own_unfinished_claim(self, email: str, password: str) -> str | None:
        """The account id of a claim on ``email`` that this sign-up's earlier try made (the same
        password) and whose account was never written (the try failed, or its store write timed
        out with the claim applied), so that the retry finishes it; None otherwise. Without
        this, the retry got "an account exists; sign in", and sign-in "wrong password", for
        the claim's 10 minutes."""
        held = self._state.get(ACCOUNT_EMAILS, (email,))
        if held is None or not held.values.get("password"):
            return None
        if self._state.get(ACCOUNTS, (held.values["account_id"],)) is not None:
            return None
        return str(held.values["account_id"]) if check_password(password, held.values["password"]) else None

    def _reclaim(self, claim: Row) -> bool:
        """Take over an expired claim whose account was never written; False otherwise."""
        held = self._state.get(ACCOUNT_EMAILS, (claim.values["email"],))
        if held is None or held.values["claimed_ms"] is None:  # None: written after its account, before claims
            return False
        if claim.values["claimed_ms"] - held.values["claimed_ms"] < CLAIM_EXPIRY_MS:
            return False  # possibly a sign-up still writing its account
        if self._state.get(ACCOUNTS, (held.values["account_id"],)) is not None:
            return False
        # Conditional on the dead claim's account id, so that of two sign-ups taking it over one wins.
        return self._state.put_if(ACCOUNT_EMAILS, claim, "account_id", held.values["account_id"])

    def authenticate(self, email: str, password: str) -> Account:
        row = self._state.get(ACCOUNT_EMAILS, (str(email).strip().lower(),))
        account_row = self._state.get(ACCOUNTS, (row.values["account_id"],)) if row else None
        stored = account_row.values["password"] if account_row is not None else _NO_ACCOUNT_HASH
        # The check runs whether or not the account exists (see _NO_ACCOUNT_HASH).
        if not check_password(str(password), stored) or account_row is None:
            raise AuthenticationFailed("email or password is wrong")
        return _account(account_row)

    def account(self, account_id: str) -> Account | None:
        row = self._state.get(ACCOUNTS, (account_id,))
        return _account(row) if row else None

    def add_profile(self, account_id: str, name: str, max_age: int = 18) -> Profile:
        profile = Profile(f"p-{uuid.uuid4().hex[:10]}", _profile_name(name), _age_band(max_age))
        # Compare-and-set on the profiles column: a plain read-modify-write let two requests
        # each append to the same old list, and the later write dropped the earlier profile.
        for _ in range(_PROFILE_TRIES):
            row = self._state.get(ACCOUNTS, (account_id,))
            if row is None:
                raise AuthenticationFailed("the account no longer exists")
            profiles = row.values["profiles"]
            if len(profiles) >= MAX_PROFILES:
                raise InvalidIdentityInput(f"an account has at most {MAX_PROFILES} profiles")
            updated = Row({**row.values, "profiles": [*profiles, profile.__dict__]}, row.applied)
            if self._state.put_if(ACCOUNTS, updated, "profiles", profiles):
                return profile
        raise AccountContended(f"account {account_id} kept changing while adding a profile; retry")

    def set_profile_max_age(self, account_id: str, profile_id: str, password: str | None, max_age: int) -> Profile:
        """Change a profile's maturity limit. Raising it asks for the account's password again:
        a child holding the family TV's token must not lift its own profile's limit. Lowering
        it (or keeping it) needs none: it only ever keeps titles out."""
        band = _age_band(max_age)
        verified = False
        for _ in range(_PROFILE_TRIES):
            row = self._state.get(ACCOUNTS, (account_id,))
            if row is None:
                raise AuthenticationFailed("the account no longer exists")
            profiles = row.values["profiles"]
            at = next((i for i, p in enumerate(profiles) if p["profile_id"] == profile_id), None)
            if at is None:
                raise UnknownProfile(f"the account has no profile {profile_id!r}")
            # Checked on every try that raises (a retry may find the limit lowered meanwhile), and
            # whenever one is sent: a right one resets the account's wrong-password count, so one
            # never checked must not reach that reset.
            if (password or band > profiles[at]["max_age"]) and not verified:
                self._check_password(row, password, f"raising {profiles[at]['name']}'s limit "
                                     f"from {profiles[at]['max_age']}+ to {band}+")
                verified = True
            changed = {**profiles[at], "max_age": band}
            updated = Row({**row.values, "profiles": [*profiles[:at], changed, *profiles[at + 1:]]}, row.applied)
            if self._state.put_if(ACCOUNTS, updated, "profiles", profiles):
                return Profile(**changed)
        raise AccountContended(f"account {account_id} kept changing while changing a profile; retry")

    def switch_profile(self, account_id: str, from_profile_id: str, to_profile_id: str,
                       password: str | None) -> Profile:
        """The profile a device may switch to from ``from_profile_id`` ("Who's watching?").
        One whose band is above the current profile's needs the account's password: without
        it a kids' profile's limit would be one tap away on the family TV."""
        row = self._state.get(ACCOUNTS, (account_id,))
        if row is None:
            raise AuthenticationFailed("the account no longer exists")
        profiles = {p["profile_id"]: p for p in row.values["profiles"]}
        target = profiles.get(to_profile_id)
        if target is None:
            raise UnknownProfile(f"the account has no profile {to_profile_id!r}")
        current = profiles.get(from_profile_id)
        current_band = current["max_age"] if current else AGE_BANDS[0]  # a profile gone: the strictest
        if password or target["max_age"] > current_band:  # one sent is checked: see set_profile_max_age
            self._check_password(row, password, f"switching to {target['name']} ({target['max_age']}+) "
                                 f"from a profile limited to {current_band}+")
        return Profile(**target)

    @staticmethod
    def _check_password(row: Row, password: str | None, what: str) -> None:
        if not password:
            raise PasswordRequired(f"{what} needs the account's password: send it as 'password'")
        if not check_password(str(password), row.values["password"]):
            raise AuthenticationFailed(f"the account's password is wrong; {what} needs it")

    def profile(self, account_id: str, profile_id: str) -> Profile | None:
        account = self.account(account_id)
        return next((p for p in account.profiles if p.profile_id == profile_id), None) if account else None

    def register_device(self, account_id: str, name: str, device_type: str, security_level: str) -> Device:
        if device_type not in DEVICE_TYPES:
            raise InvalidIdentityInput(f"device_type must be one of {', '.join(DEVICE_TYPES)}")
        if security_level not in SECURITY_LEVELS:
            raise InvalidIdentityInput(f"security_level must be one of {', '.join(SECURITY_LEVELS)}")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise InvalidIdentityInput("device name must be 1 to 100 characters")
        active = [d for d in self.devices(account_id) if d.active]
        if len(active) >= self.max_devices:
            raise DeviceLimitReached(f"the account has {len(active)} active devices, the most allowed; "
                                     "remove one before adding another")
        device = Device(account_id, f"dev-{uuid.uuid4().hex[:16]}", name, device_type,
                        security_level, self._clock_ms())
        self._state.put(DEVICES, Row(dict(device.__dict__)))
        return device

    def remove_device(self, account_id: str, device_id: str) -> None:
        row = self._state.get(DEVICES, (account_id, device_id))
        if row is None:
            raise UnknownDevice(f"device {device_id} is not registered to this account")
        self._state.put(DEVICES, Row({**row.values, "active": False}, row.applied))

    def device(self, account_id: str, device_id: str) -> Device:
        row = self._state.get(DEVICES, (account_id, device_id))
        if row is None or not row.values["active"]:
            raise UnknownDevice(f"device {device_id} is not registered to this account (or was removed)")
        return Device(**row.values)

    def devices(self, account_id: str) -> list[Device]:
        return [Device(**r.values) for r in self._state.query(DEVICES, (account_id,))]


def _account(row: Row) -> Account:
    v = row.values
    return Account(v["account_id"], v["email"], v["country"], tuple(Profile(**p) for p in v["profiles"]))
