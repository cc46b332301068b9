"""A deployment for the player tests: real packaged titles (cenc and cbcs), the origin,
the CDN PoP and ISP appliance on nginx, the gateways, one subscribed account; on the
embedded runtime or on Kafka + Cassandra, the processors drained by the test or run by
``reel processors`` as a child process."""

from __future__ import annotations

import asyncio
import base64
import secrets
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from reelstream.config import Settings
from reelstream.player.traces import Trace

EMAIL, PASSWORD = "player@example.com", "correct horse battery"
TITLES = (("t-cenc", "cenc", "Tones (cenc)"), ("t-cbcs", "cbcs", "Tones (cbcs)"))
STEADY = Trace("steady-4mbps", (0.0, 3600.0), (4.0, 4.0))
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@contextmanager
def player_stack(root: Path, media: Path, settings: Settings, child_processors: bool,
                 steering: bool = False) -> Iterator[dict[str, Any]]:
    """With ``steering``, the gateways name both tiers as content-steering pathways and the
    steering server runs (TTL 1 s, no probing: its ``steering`` state, yielded, says what it
    knows of each node). Yields base (gateways), runtime, packages, settle() (without ``child_processors``:
    run the processors now; with: ``reel processors`` runs them on its own) and the id of a hardware-secure TV registered on
    the account (the device that proved the subscription reached the license server)."""
    from reelstream.edge.origin import origin_app
    from reelstream.edge.runner import EdgeRunner
    from reelstream.edge.steering import SteeringState, steering_app
    from reelstream.edge.topology import local_topology
    from reelstream.events.model import new_event
    from reelstream.gateways.app import create_app
    from reelstream.gateways.settings import GatewaySettings
    from reelstream.keys.kek import AesGcmKek
    from reelstream.keys.service import KeyService
    from reelstream.runtime import Runtime
    from tests.integration.test_edge_delivery import SECRET
    from tests.integration.test_web_player import drain, publish
    from tests.support.browser import serve
    from tests.support.ports import free_port_block
    from tests.unit.gateways.support import Api, kid, start_processors, stop_process, wait_for

    runtime = Runtime(settings)
    keys = KeyService(runtime.state, AesGcmKek(secrets.token_bytes(32)), runtime.publish, producer="test")
    packages = {tid: publish(runtime, keys, media, tid, scheme, name) for tid, scheme, name in TITLES}
    with ExitStack() as stack:
        stack.callback(runtime.close)
        if child_processors:
            process = start_processors(runtime.settings, root / "processors.log")
            stack.callback(stop_process, process)
        origin = stack.enter_context(serve(origin_app(runtime.objects)))
        topology = local_topology(origin, root / "edge", base_port=free_port_block(2))
        appliance, pop = topology.node("appliance-isp-a"), topology.node("pop-1")
        assert appliance is not None and pop is not None
        # With steering, manifests name both tiers as pathways (the appliance first, the default)
        # and the steering server ranks them per session (the appliance first: popular titles).
        state = SteeringState(topology, popular=frozenset(packages), ttl_s=1)
        pathways = {"edge_pathways": f"appliance-isp-a={appliance.base_url},pop-1={pop.base_url}",
                    "steering_url": stack.enter_context(serve(steering_app(state, probe_interval_s=None))),
                    "default_isp": "isp-a"} if steering else {}
        gateway_settings = GatewaySettings(
            signing_keys="k1:" + base64.b64encode(secrets.token_bytes(32)).decode(), edge_secret=SECRET.value,
            edge_base_url=appliance.base_url, default_country="US", **pathways,
            clearkey_security="hardware")  # the TV's HD keys through Clear Key: no vendor DRM here
        stack.enter_context(EdgeRunner(topology, SECRET, popular=list(packages)))
        base = stack.enter_context(serve(create_app(runtime, gateway_settings, keys)))
        api = Api(base)
        r = api.call("POST", "/auth/accounts", json={"email": EMAIL, "password": PASSWORD, "country": "US"})
        assert r.status_code == 201, r.text
        account_id = r.json()["account_id"]
        runtime.publish(new_event("EntitlementGranted", {
            "entitlement_id": f"e-{uuid.uuid4().hex[:8]}", "user_id": account_id, "kind": "SUBSCRIPTION",
            "title_id": None, "plan": "standard", "starts_at": datetime(2020, 1, 1, tzinfo=UTC), "ends_at": None},
            producer="test"))

        def settle() -> None:
            if not child_processors:
                drain(runtime)

        settle()
        session = api.call("POST", "/auth/sessions", json={"email": EMAIL, "password": PASSWORD}).json()
        device = api.call("POST", "/auth/devices", session["token"],
                          json={"name": "living-room tv", "device_type": "tv", "security_level": "hardware"}).json()

        def licensed() -> bool:
            settle()
            r = api.call("GET", "/manifests/titles/t-cenc/manifest.mpd", device["token"])
            if r.status_code != 200:
                return False
            return api.license(r.headers["X-Reel-Ticket"], [kid(packages["t-cenc"], "SD")]).status_code == 200

        wait_for(licensed, 120, "the catalog and the subscription to reach the views")
        yield {"base": base, "runtime": runtime, "packages": packages, "settle": settle, "api": api,
               "topology": topology, "tv_device_id": device["device_id"], "steering": state if steering else None}


def wait_until(check: Callable[[], Any], what: str, settle: Callable[[], None], timeout: float = 60) -> Any:
    from tests.unit.gateways.support import wait_for

    def probe() -> Any:
        settle()
        return check()
    return wait_for(probe, timeout, what)
