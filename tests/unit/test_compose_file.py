"""infra/docker-compose.yml, read statically (no Docker engine here): every ReelStream
service runs a command `reel` accepts, the roles a title needs to be published are there,
and what is published on the host is bound where Docker's port map reaches it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from reelstream.cli import build_parser

COMPOSE = Path(__file__).resolve().parents[2] / "infra" / "docker-compose.yml"


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def reel_services() -> dict[str, list[str]]:
    return {name: s["command"] for name, s in services().items() if s.get("image") == "reelstream:local"}


@pytest.mark.parametrize("name", sorted(reel_services()))
def test_each_command_is_one_reel_accepts(name: str) -> None:
    command = reel_services()[name]
    assert command[0] == "reel"
    build_parser().parse_args(command[1:])  # argparse exits on an unknown command or flag


def test_every_role_a_title_needs_to_be_published_runs() -> None:
    roles = {" ".join(c[1:3]) for c in reel_services().values()}
    assert {"processors --kafka", "worker transcode", "worker package", "gateway --web", "edge up",
            "ingest-server --host"} <= roles
    tiers = {build_parser().parse_args(c[1:]).tier for c in reel_services().values() if c[1:3] == ["edge", "up"]}
    assert {"pop", "appliance"} <= tiers, "each cache tier runs as a service of its own"


def published(name: str) -> set[int]:
    """The container ports ``name`` publishes (``127.0.0.1:HOST:CONTAINER``)."""
    return {int(p.rsplit(":", 1)[1]) for p in services()[name].get("ports", [])}


def bound_ports(name: str) -> set[int]:
    """The ports ``name``'s command listens on."""
    args = build_parser().parse_args(services()[name]["command"][1:])
    if name in ("gateway", "ingest"):
        return {args.port}
    if args.origin_only:
        return {args.base_port - 1}
    if args.tier == "pop":
        return {args.base_port - 2, args.base_port}  # steering, PoP
    if args.tier == "appliance":
        return {args.base_port + 1}
    return {args.base_port - 2, args.base_port, args.base_port + 1}  # steering, PoP, appliance


def test_published_roles_bind_every_interface_on_the_published_port() -> None:
    for name, service in services().items():
        if service.get("image") != "reelstream:local" or not service.get("ports"):
            continue
        args = build_parser().parse_args(service["command"][1:])
        assert args.host == "0.0.0.0", f"{name} listens on {args.host}: the port map cannot reach it"
        assert bound_ports(name) == published(name), f"{name} binds {bound_ports(name)}, publishes {published(name)}"


def env_default_url(value: str) -> str:
    """The default of ``${NAME:-default}``."""
    return str(value).split(":-", 1)[1].rstrip("}")


def test_the_roles_get_the_secrets_and_where_segments_come_from() -> None:
    env = services()["gateway"]["environment"]
    for name in ("REEL_KEK", "REEL_GATEWAY_SIGNING_KEYS", "REEL_EDGE_SECRET", "REEL_EDGE_BASE_URL",
                 "REEL_DEFAULT_COUNTRY", "REEL_DEFAULT_ISP"):
        assert name in env, name
    appliance = build_parser().parse_args(services()["appliance"]["command"][1:])
    assert env_default_url(env["REEL_EDGE_BASE_URL"]) == f"http://127.0.0.1:{appliance.base_port + 1}"
    # The ingest server does not start without its tokens (`reel secrets` writes them into infra/.env).
    assert "REEL_INGEST_TOKENS" in services()["ingest"]["environment"]


def test_the_ingest_server_stages_on_a_volume_and_answers_its_health_check_path() -> None:
    ingest = services()["ingest"]
    args = build_parser().parse_args(ingest["command"][1:])
    assert any(v.endswith(f":{args.staging}") for v in ingest["volumes"])  # uploads survive a new container
    assert f"http://127.0.0.1:{args.port}/openapi.json" in " ".join(ingest["healthcheck"]["test"])


def tier(name: str) -> Any:
    return build_parser().parse_args(services()[name]["command"][1:])


def host_port(name: str, container_port: int) -> int:
    """The host port ``name`` publishes ``container_port`` on."""
    found = [int(p.split(":")[1]) for p in services()[name]["ports"] if int(p.rsplit(":", 1)[1]) == container_port]
    assert found, f"{name} does not publish {container_port}"
    return found[0]


def test_the_cache_tiers_are_two_services_chained_appliance_pop_origin() -> None:
    pop, appliance, origin = tier("pop"), tier("appliance"), services()["origin"]
    assert "edge" not in services(), "the tiers run as services of their own, not one 'edge' service"
    assert (pop.tier, appliance.tier) == ("pop", "appliance") and pop.host == appliance.host == "0.0.0.0"
    # One port block everywhere, so each service finds the other on its usual port by name.
    assert pop.base_port == appliance.base_port
    # The PoP fills from the origin service by its name, on the port the origin binds; the
    # appliance from the PoP service (its nginx upstream is --pop-host on the PoP's port).
    assert pop.origin_url == f"http://origin:{min(bound_ports('origin'))}"
    assert appliance.pop_host == "pop" and pop.appliance_host == "appliance"
    # The origin serves them the plain object paths (an origin facing viewers serves only signed
    # URLs, and every fill would be a 404), and only on this host's loopback.
    origin_args = build_parser().parse_args(origin["command"][1:])
    assert origin_args.origin_only and origin_args.for_tiers
    assert all(p.startswith("127.0.0.1:") for p in origin.get("ports", []))
    # Each starts once what it fills from answers (nginx resolves the upstream's name at load).
    assert services()["pop"]["depends_on"]["origin"]["condition"] == "service_healthy" and "healthcheck" in origin
    assert services()["appliance"]["depends_on"]["pop"]["condition"] == "service_healthy"
    # The steering server runs beside the PoP and reads the appliance's load from the network.
    assert pop.base_port - 2 in bound_ports("pop") and appliance.status_allow
    # The gateways name both tiers as pathways (appliance first) and the steering server, on the
    # ports the tier services publish, as `reel up` sets REEL_EDGE_PATHWAYS and REEL_STEERING_URL.
    env = services()["gateway"]["environment"]
    pathways = env_default_url(env["REEL_EDGE_PATHWAYS"])
    assert pathways == (f"appliance-isp-a=http://127.0.0.1:{host_port('appliance', appliance.base_port + 1)},"
                        f"pop-1=http://127.0.0.1:{host_port('pop', pop.base_port)}")
    assert env_default_url(env["REEL_STEERING_URL"]) == f"http://127.0.0.1:{host_port('pop', pop.base_port - 2)}"
    assert env_default_url(env["REEL_DEFAULT_ISP"]) == "isp-a"


@pytest.mark.parametrize("name", ["pop", "appliance"])
def test_each_tier_has_its_own_cache_volume_and_a_health_check_on_its_ports(name: str) -> None:
    service, args = services()[name], tier(name)
    # nginx writes cache and logs under the work dir: on a volume of its own, where the image's user may write.
    volumes = [v for v in service["volumes"] if v.endswith(":" + args.work_dir)]
    assert len(volumes) == 1 and args.work_dir.startswith("/var/lib/reelstream/")
    volume = volumes[0].split(":")[0]
    assert volume in yaml.safe_load(COMPOSE.read_text())["volumes"]
    others = [v.split(":")[0] for n, s in services().items() if n != name for v in s.get("volumes", [])]
    assert volume not in others, f"{name} shares its cache volume {volume}"
    check = " ".join(service["healthcheck"]["test"])
    assert all(str(p) in check for p in bound_ports(name)), f"{name}'s health check misses one of its ports"


@pytest.mark.parametrize("name", ["pop", "appliance", "origin"])
def test_the_delivery_services_hold_no_keys(name: str) -> None:
    # Encrypted bytes only: the KEK (which unwraps every content key), the token signing keys
    # and the ingest tokens stay with the roles that need them; the tiers fill over HTTP, so
    # they get no S3 credentials either.
    env = services()[name]["environment"]
    assert not {"REEL_KEK", "REEL_GATEWAY_SIGNING_KEYS", "REEL_INGEST_TOKENS"} & set(env), name
    if name != "origin":
        assert not {"REEL_S3_ACCESS_KEY", "REEL_S3_SECRET_KEY"} & set(env) and "--s3" not in services()[name]["command"]
        assert "REEL_EDGE_SECRET" in env  # they verify the gateways' signed URLs


def pinned_version(service: str, server: str) -> str:
    """The release infra/local runs (``infra/local/SERVICE/pom.xml``'s ``<SERVER.version>``)."""
    pom = (COMPOSE.parent / "local" / service / "pom.xml").read_text()
    found = re.search(rf"<{server}\.version>([^<]+)</{server}\.version>", pom)
    assert found, f"infra/local/{service}/pom.xml names no {server}.version"
    return found.group(1)


@pytest.mark.parametrize(("service", "server"), [("kafka", "kafka"), ("cassandra", "cassandra"), ("s3", "s3proxy")])
def test_each_server_image_is_the_exact_release_infra_local_runs(service: str, server: str) -> None:
    # A floating tag (cassandra:5.0) pulls whatever patch release is newest that day.
    tag = services()[service]["image"].rsplit(":", 1)[1]
    assert re.fullmatch(r"\d+\.\d+\.\d+", tag), f"{service}: tag {tag!r} is not an exact release"
    pinned = pinned_version(service, server)
    assert tag == pinned, f"{service}: image {tag}, infra/local runs {pinned}"


def env_default(value: str, variable: str) -> str:
    """The default of ``${VARIABLE:-default}``, asserting the value is that overridable form."""
    found = re.fullmatch(rf"\$\{{{variable}:-([^}}]+)\}}", str(value))
    assert found, f"{value!r} is not ${{{variable}:-default}}: it cannot be set from infra/.env"
    return found.group(1)


def size_bytes(size: str) -> int:
    found = re.fullmatch(r"(\d+)([kmgKMG])", size)
    assert found, size
    return int(found.group(1)) * int(1024 ** " kmg".index(found.group(2).lower()))


def test_cassandra_heap_is_sized_and_overridable() -> None:
    cassandra = services()["cassandra"]
    env = cassandra["environment"]
    heap = size_bytes(env_default(env["MAX_HEAP_SIZE"], "CASSANDRA_MAX_HEAP_SIZE"))
    young = size_bytes(env_default(env["HEAP_NEWSIZE"], "CASSANDRA_HEAP_NEWSIZE"))  # cassandra-env.sh wants both
    limit = size_bytes(env_default(cassandra["mem_limit"], "CASSANDRA_MEM_LIMIT"))
    assert heap >= 2 * 1024**3, "under the 2 GiB heap infra/local and the benchmarks run with"
    assert young < heap and limit >= 2 * heap, "off-heap memory needs about as much as the heap"
    header = COMPOSE.read_text().split("\nname:")[0]
    assert all(v in header for v in ("CASSANDRA_MAX_HEAP_SIZE", "CASSANDRA_HEAP_NEWSIZE", "CASSANDRA_MEM_LIMIT"))


def test_s3_and_every_client_of_it_take_the_deployments_generated_credentials() -> None:
    # No fallback to infra/local's published keys: without `reel secrets`'s infra/.env, compose
    # stops and names the variable (${NAME:?message}) instead of serving the network with them.
    s3 = services()["s3"]["environment"]
    assert re.fullmatch(r"\$\{REEL_S3_ACCESS_KEY:\?[^}]+\}", s3["S3PROXY_IDENTITY"]), s3["S3PROXY_IDENTITY"]
    assert re.fullmatch(r"\$\{REEL_S3_SECRET_KEY:\?[^}]+\}", s3["S3PROXY_CREDENTIAL"]), s3["S3PROXY_CREDENTIAL"]
    clients = {name: s["environment"] for name, s in services().items()
               if "REEL_S3_ENDPOINT" in s.get("environment", {})}
    assert {"gateway", "processors", "package-worker", "transcode-worker", "ingest", "origin", "topics"} <= set(clients)
    for name, env in clients.items():
        assert env["REEL_S3_ACCESS_KEY"] == s3["S3PROXY_IDENTITY"], name
        assert env["REEL_S3_SECRET_KEY"] == s3["S3PROXY_CREDENTIAL"], name
    assert ":-reelstream}" not in COMPOSE.read_text() and ":-reelstream-secret}" not in COMPOSE.read_text()


def s3_entrypoint(identity: str, credential: str) -> subprocess.CompletedProcess[str]:
    """The s3 service's entrypoint, run here by the shell as the container would run it
    (compose turns ``$$`` into ``$``); the image's own entrypoint is not here, so getting past
    the check ends in the shell's 127 (command not found)."""
    entrypoint = [word.replace("$$", "$") for word in services()["s3"]["entrypoint"]]
    assert entrypoint[:2] == ["/bin/sh", "-c"] and "exec /opt/s3proxy/run-docker-container.sh" in entrypoint[2]
    env = {"PATH": os.environ["PATH"], "S3PROXY_IDENTITY": identity, "S3PROXY_CREDENTIAL": credential}
    return subprocess.run(entrypoint, env=env, capture_output=True, text=True, timeout=10, check=False)


@pytest.mark.parametrize(("identity", "credential"), [("reelstream", "reelstream-secret"), ("reelstream", "x" * 40),
                                                      ("reel-1f2e", "reelstream-secret"), ("", ""), ("reel-1f2e", "")])
def test_the_s3_server_refuses_to_serve_the_network_with_the_well_known_credentials(
        identity: str, credential: str) -> None:
    done = s3_entrypoint(identity, credential)
    assert done.returncode == 64 and "reel secrets" in done.stderr, done


def test_the_s3_server_starts_with_generated_credentials() -> None:
    done = s3_entrypoint("reel-1f2e3d4c5b6a7980", "pQ3" * 14)
    assert done.returncode == 127 and "run-docker-container.sh" in done.stderr, done  # went on to the image's own
