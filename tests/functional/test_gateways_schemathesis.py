"""Schemathesis against every gateway's own OpenAPI document: generated requests (valid
and invalid, with and without a valid device-bound token) never get a 5xx, and every
answer has a documented status, content type and body schema."""

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
from tests.unit.gateways.support import Clock, drain, grant, key_service, publish_title, settings

schemathesis = pytest.importorskip("schemathesis")
FailureGroup = pytest.importorskip("schemathesis.core.failures").FailureGroup
EXAMPLES = 30
CONFORMANCE = [schemathesis.checks.status_code_conformance, schemathesis.checks.content_type_conformance,
               schemathesis.checks.response_schema_conformance]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    runtime = Runtime(Settings(data_dir=tmp_path_factory.mktemp("schemathesis") / "reel"))
    keys = key_service(runtime)
    publish_title(runtime, keys, "film-1")
    app = create_app(runtime, settings(default_country="US"), keys, clock=Clock(time.time()))
    with serve(app) as base:
        requests.post(f"{base}/auth/accounts", json={"email": "s@example.com", "password": "password1",
                                                      "country": "US"}, timeout=10).raise_for_status()
        session = requests.post(f"{base}/auth/sessions", json={"email": "s@example.com", "password": "password1"},
                                timeout=10).json()
        device = requests.post(f"{base}/auth/devices", json={"name": "tv", "device_type": "tv",
                                                             "security_level": "hardware"},
                               headers={"Authorization": f"Bearer {session['token']}"}, timeout=10).json()
        grant(runtime, session["account_id"], "sub-1")
        drain(runtime)
        yield {"base": base, "token": device["token"]}
    runtime.close()


@pytest.mark.parametrize("name", list(GATEWAYS))
def test_no_server_errors(gateway: dict[str, Any], name: str) -> None:
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st

    base = f"{gateway['base']}/{name}"
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, f"{name} documents no operations"
    for operation in operations:
        @given(case=operation.as_strategy(), authorized=st.booleans())
        @hsettings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case: Any, authorized: bool) -> None:
            headers = {"Authorization": f"Bearer {gateway['token']}"} if authorized else {}
            response = case.call(base_url=base, headers=headers, timeout=10)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code} "
                                f"{response.text[:200]}")
                return
            try:
                case.validate_response(response, checks=CONFORMANCE)
            except FailureGroup as group:
                failures.extend(f"{case.method} {case.formatted_path} -> {response.status_code}: {failure.title}: "
                                f"{failure.message[:300]}" for failure in group.exceptions)

        run()
    assert failures == []
