"""Every documented operation, called as a client would call it, answers as its gateway's
OpenAPI document says: a documented status, a documented content type and headers, and
a body that validates against the declared schema. The walk must reach every operation
(but the named exemptions), so a route added without a declared answer fails here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from reelstream.config import Settings
from reelstream.gateways.app import GATEWAYS, create_app
from reelstream.runtime import Runtime
from tests.support.browser import serve
from tests.unit.gateways.support import (
    Clock,
    drain,
    grant,
    key_service,
    kid,
    publish_title,
    settings,
)

schemathesis = pytest.importorskip("schemathesis")

# Operations the walk cannot reach with a success, and why.
EXEMPT = {("licenses", "POST", "/widevine"): "needs a vendor license service (tests/functional/"
                                             "test_gateways_widevine.py covers it)"}


class ContractWalk:
    """Calls the gateways and checks each answer against the document of its gateway."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.documents = {name: requests.get(f"{base}/{name}/openapi.json", timeout=10).json() for name in GATEWAYS}
        self.schemas = {name: schemathesis.openapi.from_dict(doc) for name, doc in self.documents.items()}
        self.reached: set[tuple[str, str, str]] = set()

    def call(self, gateway: str, method: str, route: str, path: str, expect: int, token: str | None = None,
             **kw: Any) -> requests.Response:
        headers = {"X-Client-Country": "US", **({"Authorization": f"Bearer {token}"} if token else {})}
        response = self.http.request(method, f"{self.base}/{gateway}{path}", headers=headers, timeout=30, **kw)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text[:300]}"
        documented = self.documents[gateway]["paths"][route][method.lower()]["responses"]
        answer = documented.get(str(response.status_code))
        assert answer is not None, f"{method} {route} answered {response.status_code}, not in {sorted(documented)}"
        if response.status_code != 204:
            media = response.headers["Content-Type"].split(";")[0]
            assert media in answer["content"], f"{method} {route}: {media} is not one of {list(answer['content'])}"
        for header in answer.get("headers", {}):
            assert header in response.headers, f"{method} {route}: documented header {header} is missing"
        self.schemas[gateway][route][method].validate_response(response)  # raises, naming the mismatch
        if response.status_code < 300:
            self.reached.add((gateway, method, route))
        return response


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ContractWalk, Runtime, Any]]:
    runtime = Runtime(Settings(data_dir=tmp_path_factory.mktemp("contract") / "reel"))
    keys = key_service(runtime)
    package = publish_title(runtime, keys, "film-1")
    drain(runtime)
    app = create_app(runtime, settings(default_country="US", edge_pathways="pop-1=http://pop.test:8400",
                                       steering_url="http://steer.test:8398"), keys, clock=Clock(time.time()))
    with serve(app) as base:
        yield ContractWalk(base), runtime, package
    runtime.close()


def test_every_operation_answers_as_documented(walk: tuple[ContractWalk, Runtime, Any]) -> None:
    api, runtime, package = walk
    api.call("auth", "POST", "/accounts", "/accounts", 201,
             json={"email": "c@example.com", "password": "password1", "country": "US", "profile_name": "Ann"})
    session = api.call("auth", "POST", "/sessions", "/sessions", 201,
                       json={"email": "c@example.com", "password": "password1"}).json()
    grant(runtime, session["account_id"], "sub-1")
    drain(runtime)
    api.call("auth", "GET", "/me", "/me", 200, session["token"])
    kids = api.call("auth", "POST", "/profiles", "/profiles", 201, session["token"],
                    json={"name": "Kids", "max_age": 7}).json()
    api.call("auth", "PATCH", "/profiles/{profile_id}", f"/profiles/{kids['profile_id']}", 200, session["token"],
             json={"password": "password1", "max_age": 13})
    api.call("auth", "POST", "/profiles/{profile_id}/sessions", f"/profiles/{kids['profile_id']}/sessions", 201,
             session["token"], json={})
    device = api.call("auth", "POST", "/devices", "/devices", 201, session["token"],
                      json={"name": "tv", "device_type": "tv", "security_level": "hardware"}).json()
    token = device["token"]
    api.call("auth", "GET", "/devices", "/devices", 200, session["token"])

    api.call("manifests", "GET", "/titles/{title_id}/{name}", "/titles/film-1/manifest.mpd", 200, token)
    opened = api.call("manifests", "GET", "/titles/{title_id}/{name}", "/titles/film-1/master.m3u8", 200, token)
    ticket = opened.headers["X-Reel-Ticket"]
    api.call("manifests", "GET", "/t/{ticket}/{name}", f"/t/{ticket}/h264-1080p.m3u8", 200)
    api.call("manifests", "GET", "/t/{ticket}/p/{pathway}/{name}", f"/t/{ticket}/p/pop-1/h264-1080p.m3u8", 200)

    key = kid(package, "HD")
    from reelstream.identity.tokens import b64url
    api.call("licenses", "POST", "/clearkey", f"/clearkey?ticket={ticket}", 200,
             json={"kids": [b64url(bytes.fromhex(key))], "type": "temporary"})
    api.call("licenses", "GET", "/clearkey/keys/{kid}", f"/clearkey/keys/{key}?ticket={ticket}", 200)

    api.call("playback", "POST", "/heartbeats", "/heartbeats", 204, token, json={
        "sid": opened.headers["X-Reel-Session"], "cid": "film-1", "event": "heartbeat", "position_ms": 400_000})
    drain(runtime)
    api.call("playback", "GET", "/resume/{title_id}", "/resume/film-1", 200, token)
    api.call("playback", "GET", "/continue-watching", "/continue-watching", 200, token)

    licensed = api.call("downloads", "POST", "/licenses", "/licenses", 201, token, json={"title_id": "film-1"}).json()
    listed = api.call("downloads", "GET", "/licenses", "/licenses", 200, token).json()["downloads"]
    assert [d["expires_at_ms"] for d in listed] == [licensed["expires_at_ms"]]  # one name for one figure
    lid = licensed["license_id"]
    api.call("downloads", "POST", "/licenses/{license_id}/renew", f"/licenses/{lid}/renew", 201, token)
    api.call("downloads", "DELETE", "/licenses/{license_id}", f"/licenses/{lid}", 204, token)
    api.call("auth", "DELETE", "/devices/{device_id}", f"/devices/{device['device_id']}", 204, session["token"])

    documented = {(name, method.upper(), path) for name, doc in api.documents.items()
                  for path, operations in doc["paths"].items() for method in operations}
    assert documented - api.reached - set(EXEMPT) == set()


def test_a_wrong_track_name_is_not_found_and_a_withheld_track_is_refused(
        walk: tuple[ContractWalk, Runtime, Any]) -> None:
    api, runtime, _ = walk
    api.call("auth", "POST", "/accounts", "/accounts", 201,
             json={"email": "t@example.com", "password": "password1", "country": "US"})
    session = api.call("auth", "POST", "/sessions", "/sessions", 201,
                       json={"email": "t@example.com", "password": "password1"}).json()
    grant(runtime, session["account_id"], "sub-2")
    drain(runtime)
    phone = api.call("auth", "POST", "/devices", "/devices", 201, session["token"],
                     json={"name": "phone", "device_type": "phone", "security_level": "software"}).json()
    ticket = api.call("manifests", "GET", "/titles/{title_id}/{name}", "/titles/film-1/master.m3u8", 200,
                      phone["token"]).headers["X-Reel-Ticket"]
    missing = api.call("manifests", "GET", "/t/{ticket}/{name}", f"/t/{ticket}/no-such-track.m3u8", 404)
    assert "no track 'no-such-track'" in missing.json()["error"]
    withheld = api.call("manifests", "GET", "/t/{ticket}/{name}", f"/t/{ticket}/h264-2160p.m3u8", 403)
    assert "not offered" in withheld.json()["error"]


def test_a_first_profile_name_gets_the_same_limit_as_a_later_one(walk: tuple[ContractWalk, Runtime, Any]) -> None:
    api, _, _ = walk
    refused = api.call("auth", "POST", "/accounts", "/accounts", 400, json={
        "email": "long@example.com", "password": "password1", "country": "US", "profile_name": "x" * 65})
    assert refused.json()["error"] == "profile name must be 1 to 64 characters"
    api.call("auth", "POST", "/sessions", "/sessions", 401, json={"email": "long@example.com", "password": "password1"})
