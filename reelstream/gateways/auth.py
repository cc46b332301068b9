"""The auth gateway: accounts and profiles, sessions (signed tokens), devices.

    POST   /auth/accounts          sign up                     -> 201 account
    POST   /auth/sessions          sign in (email, password)   -> 201 session token
    GET    /auth/me                the caller's account         -> 200
    POST   /auth/profiles          add a profile                -> 201
    PATCH  /auth/profiles/{profile_id}   change its maturity limit (raising it: the password) -> 200
    POST   /auth/profiles/{profile_id}/sessions   switch this device to the profile -> 201 token
    POST   /auth/devices           register this device         -> 201 device + device-bound token
    GET    /auth/devices           the account's devices        -> 200
    DELETE /auth/devices/{device_id}                            -> 204
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

from aiohttp import web

from reelstream.gateways.keys import services
from reelstream.gateways.openapi import BOOL, ID, INT, STR, Route, add_routes, array, nullable, obj
from reelstream.gateways.services import Caller, Services, field_of, json_body
from reelstream.identity.accounts import (
    AGE_BANDS,
    DEVICE_TYPES,
    MAX_PROFILE_NAME,
    SECURITY_LEVELS,
    AuthenticationFailed,
    PasswordRequired,
)

T = TypeVar("T")


async def create_account(request: web.Request) -> web.Response:
    doc = await json_body(request)
    s = services(request)
    account = await s.passwords.run(
        s.identity.create_account, field_of(doc, "email", str), field_of(doc, "password", str),
        field_of(doc, "country", str), field_of(doc, "profile_name", str, required=False, default="main"))
    return web.json_response(asdict(account), status=201)


async def create_session(request: web.Request) -> web.Response:
    doc = await json_body(request)
    s = services(request)
    email = field_of(doc, "email", str)
    s.sign_ins.check(email)  # before the hash: a throttled guess costs no scrypt
    try:
        account = await s.passwords.run(s.identity.authenticate, email, field_of(doc, "password", str))
    except AuthenticationFailed:
        s.sign_ins.failed(email)
        raise
    s.sign_ins.succeeded(email)
    profile_id = field_of(doc, "profile_id", str, required=False) or account.profiles[0].profile_id
    if profile_id not in {p.profile_id for p in account.profiles}:
        raise AuthenticationFailed(f"profile {profile_id} is not one of this account's profiles")
    device_id = field_of(doc, "device_id", str, required=False)
    if device_id is not None:
        await asyncio.to_thread(s.identity.device, account.account_id, device_id)
    token = s.session_token(account.account_id, profile_id, device_id)
    return web.json_response({"token": token, "token_type": "Bearer", "expires_in": s.settings.session_ttl_s,
                              "account_id": account.account_id, "profile_id": profile_id, "device_id": device_id},
                             status=201)


async def me(request: web.Request) -> web.Response:
    s = services(request)
    caller = await s.account_caller(request)
    account = await asyncio.to_thread(s.identity.account, caller.account_id)
    if account is None:
        raise AuthenticationFailed("the account no longer exists")
    return web.json_response({**asdict(account), "profile_id": caller.profile_id, "device_id": caller.device_id})


async def add_profile(request: web.Request) -> web.Response:
    s = services(request)
    caller = await s.account_caller(request)
    doc = await json_body(request)
    profile = await asyncio.to_thread(s.identity.add_profile, caller.account_id, field_of(doc, "name", str),
                                      field_of(doc, "max_age", int, required=False, default=18))
    return web.json_response(asdict(profile), status=201)


async def set_profile_max_age(request: web.Request) -> web.Response:
    s = services(request)
    caller = await s.account_caller(request)
    doc = await json_body(request)
    password = field_of(doc, "password", str, required=False)
    profile = await _with_password(
        s, caller, password, s.identity.set_profile_max_age, caller.account_id, request.match_info["profile_id"],
        password, field_of(doc, "max_age", int))
    return web.json_response(asdict(profile))


async def switch_profile(request: web.Request) -> web.Response:
    """A session token for another of the account's profiles, on the caller's device."""
    s = services(request)
    caller = await s.account_caller(request)
    doc = await json_body(request)
    password = field_of(doc, "password", str, required=False)
    profile = await _with_password(s, caller, password, s.identity.switch_profile, caller.account_id,
                                   caller.profile_id, request.match_info["profile_id"], password)
    token = s.session_token(caller.account_id, profile.profile_id, caller.device_id)
    return web.json_response({"token": token, "token_type": "Bearer", "expires_in": s.settings.session_ttl_s,
                              "account_id": caller.account_id, "profile_id": profile.profile_id,
                              "device_id": caller.device_id, "profile": asdict(profile)}, status=201)


async def _with_password(s: Services, caller: Caller, password: str | None, call: Callable[..., T],
                         *args: Any) -> T:
    """``call`` on the password threads, a wrong password counted against the account: a child
    holding the TV's token may try passwords in a loop. None sent is no guess; one sent is always
    checked (identity), so only a right one clears the count."""
    guesser = f"account:{caller.account_id}"
    if password:
        s.sign_ins.check(guesser, "wrong passwords for this account's profile changes")
    try:
        result = await s.passwords.run(call, *args)
    except PasswordRequired:
        raise
    except AuthenticationFailed:
        if password:
            s.sign_ins.failed(guesser)
        raise
    if password:
        s.sign_ins.succeeded(guesser)
    return result


async def register_device(request: web.Request) -> web.Response:
    s = services(request)
    caller = await s.account_caller(request)
    doc = await json_body(request)
    device = await asyncio.to_thread(
        s.identity.register_device, caller.account_id, field_of(doc, "name", str),
        field_of(doc, "device_type", str), field_of(doc, "security_level", str))
    token = s.session_token(caller.account_id, caller.profile_id, device.device_id)
    return web.json_response({**asdict(device), "token": token}, status=201)


async def list_devices(request: web.Request) -> web.Response:
    s = services(request)
    caller = await s.account_caller(request)
    devices = await asyncio.to_thread(s.identity.devices, caller.account_id)
    return web.json_response({"devices": [asdict(d) for d in devices]})


async def remove_device(request: web.Request) -> web.Response:
    s = services(request)
    caller = await s.account_caller(request)
    await asyncio.to_thread(s.identity.remove_device, caller.account_id, request.match_info["device_id"])
    s.forget_device(caller.account_id, request.match_info["device_id"])  # other instances: within the device cache (10 min)
    return web.Response(status=204)


SIGN_INS_BUSY = "too many sign-ins and sign-ups at once on this instance; retry after Retry-After seconds"
PROFILE_NAME = {"type": "string", "minLength": 1, "maxLength": MAX_PROFILE_NAME}
MAX_AGE = {"type": "integer", "enum": list(AGE_BANDS),
           "description": "the oldest age band of titles the profile may play (18: every title)"}
PROFILE = obj(["profile_id", "name", "max_age"], profile_id=ID, name=PROFILE_NAME, max_age=MAX_AGE)
ACCOUNT_FIELDS: dict[str, dict[str, Any]] = {
    "account_id": ID, "email": ID, "country": {"type": "string", "pattern": "^[A-Z]{2}$"}, "profiles": array(PROFILE)}
DEVICE_TYPE = {"type": "string", "enum": list(DEVICE_TYPES)}
SECURITY_LEVEL = {"type": "string", "enum": list(SECURITY_LEVELS)}
DEVICE_FIELDS: dict[str, dict[str, Any]] = {
    "account_id": ID, "device_id": ID, "name": ID, "device_type": DEVICE_TYPE, "security_level": SECURITY_LEVEL,
    "registered_ms": INT, "active": BOOL}

ROUTES = (
    Route("POST", "/accounts", create_account, "Sign up", auth=None,
          body=obj(["email", "password", "country"], email=STR, password=STR,
                   country={"type": "string", "pattern": "^[A-Z]{2}$"}, profile_name=PROFILE_NAME),
          responses={201: "account created", 409: "email already registered", 503: SIGN_INS_BUSY},
          returns=obj(list(ACCOUNT_FIELDS), **ACCOUNT_FIELDS)),
    Route("POST", "/sessions", create_session, "Sign in: a signed, expiring session token", auth=None,
          body=obj(["email", "password"], email=STR, password=STR, profile_id=STR, device_id=STR),
          responses={201: "session token", 403: "device not registered",
                     429: "too many failed sign-ins for this email lately; Retry-After says when to try again",
                     503: SIGN_INS_BUSY},
          returns=obj(["token", "token_type", "expires_in", "account_id", "profile_id", "device_id"],
                      token=ID, token_type={"type": "string", "enum": ["Bearer"]}, expires_in=INT,
                      account_id=ID, profile_id=ID, device_id=nullable(ID))),
    Route("GET", "/me", me, "The caller's account and profiles", responses={200: "account"},
          returns=obj([*ACCOUNT_FIELDS, "profile_id", "device_id"], **ACCOUNT_FIELDS,
                      profile_id=ID, device_id=nullable(ID))),
    Route("POST", "/profiles", add_profile, "Add a profile (max_age 7: a kids' profile)",
          body=obj(["name"], name=PROFILE_NAME, max_age=MAX_AGE), responses={201: "profile"}, returns=PROFILE),
    Route("PATCH", "/profiles/{profile_id}", set_profile_max_age, "Change a profile's maturity limit (raising "
          "it needs the account's password again: a child holding the family TV's token cannot lift it)",
          body=obj(["max_age"], password=STR, max_age=MAX_AGE),
          responses={200: "profile", 401: "raising the limit needs the password, or the password is wrong",
                     404: "no such profile",
                     429: "too many wrong passwords lately; Retry-After says when to try again",
                     503: SIGN_INS_BUSY}, returns=PROFILE),
    Route("POST", "/profiles/{profile_id}/sessions", switch_profile, "Switch this device to another of the "
          "account's profiles (\"Who's watching?\"): a session token naming it, for this device. A profile whose "
          "band is above the current one's needs the account's password",
          body=obj([], password=STR),
          responses={201: "session token for the profile", 401: "the profile's band is above the current "
                     "profile's: the password is needed, or it is wrong", 404: "no such profile",
                     429: "too many wrong passwords lately; Retry-After says when to try again",
                     503: SIGN_INS_BUSY},
          returns=obj(["token", "token_type", "expires_in", "account_id", "profile_id", "device_id", "profile"],
                      token=ID, token_type={"type": "string", "enum": ["Bearer"]}, expires_in=INT,
                      account_id=ID, profile_id=ID, device_id=nullable(ID), profile=PROFILE)),
    Route("POST", "/devices", register_device, "Register this device; returns a device-bound token",
          body=obj(["name", "device_type", "security_level"], name={**STR, "maxLength": 100},
                   device_type=DEVICE_TYPE, security_level=SECURITY_LEVEL),
          responses={201: "device and token", 409: "device limit reached"},
          returns=obj([*DEVICE_FIELDS, "token"], **DEVICE_FIELDS, token=ID)),
    Route("GET", "/devices", list_devices, "The account's devices", responses={200: "devices"},
          returns=obj(["devices"], devices=array(obj(list(DEVICE_FIELDS), **DEVICE_FIELDS)))),
    Route("DELETE", "/devices/{device_id}", remove_device, "Remove a device",
          responses={204: "removed", 403: "not this account's device"}),
)


def auth_app() -> web.Application:
    app = web.Application()
    add_routes(app, ROUTES, "ReelStream auth gateway", __doc__ or "")
    return app
