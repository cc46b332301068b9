"""infra/docker-compose.yml, read statically (no Docker engine here): every ReelStream
service runs a command `reel` accepts, the roles a title needs to be published are there,
and what is published on the host is bound where Docker's port map reaches it."""

from __future__ import annotations

import re
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
    edge = build_parser().parse_args(services()["edge"]["command"][1:])
    assert env_default_url(env["REEL_EDGE_BASE_URL"]) == f"http://127.0.0.1:{edge.base_port + 1}", "the appliance"
    # The ingest server does not start without its tokens (`reel secrets` writes them into infra/.env).
    assert "REEL_INGEST_TOKENS" in services()["ingest"]["environment"]


def test_the_ingest_server_stages_on_a_volume_and_answers_its_health_check_path() -> None:
    ingest = services()["ingest"]
    args = build_parser().parse_args(ingest["command"][1:])
    assert any(v.endswith(f":{args.staging}") for v in ingest["volumes"])  # uploads survive a new container
    assert f"http://127.0.0.1:{args.port}/openapi.json" in " ".join(ingest["healthcheck"]["test"])


def test_the_cache_tiers_fill_from_the_origin_service_as_reel_up_wires_them() -> None:
    edge_service, origin = services()["edge"], services()["origin"]
    edge = build_parser().parse_args(edge_service["command"][1:])
    assert not edge.origin_only and edge.host == "0.0.0.0"
    # The PoP fills from the origin service by its name, on the port the origin binds.
    assert edge.origin_url == f"http://origin:{min(bound_ports('origin'))}"
    # It serves them the plain object paths (an origin facing viewers serves only signed URLs,
    # and every fill would be a 404), and only on this host's loopback.
    origin_args = build_parser().parse_args(origin["command"][1:])
    assert origin_args.origin_only and origin_args.for_tiers
    assert all(p.startswith("127.0.0.1:") for p in origin.get("ports", []))
    assert edge_service["depends_on"]["origin"]["condition"] == "service_healthy" and "healthcheck" in origin
    # The gateways name both tiers as pathways (appliance first) and the steering server, on the
    # edge service's published ports, as `reel up` sets REEL_EDGE_PATHWAYS and REEL_STEERING_URL.
    env = services()["gateway"]["environment"]
    pathways = env_default_url(env["REEL_EDGE_PATHWAYS"])
    assert pathways == (f"appliance-isp-a=http://127.0.0.1:{edge.base_port + 1},"
                        f"pop-1=http://127.0.0.1:{edge.base_port}")
    assert env_default_url(env["REEL_STEERING_URL"]) == f"http://127.0.0.1:{edge.base_port - 2}"
    assert env_default_url(env["REEL_DEFAULT_ISP"]) == "isp-a"
    # nginx writes caches and logs under the work dir: on a volume, where the image's user may write.
    assert any(v.endswith(":" + edge.work_dir) for v in edge_service["volumes"])
    assert edge.work_dir.startswith("/var/lib/reelstream/")


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
