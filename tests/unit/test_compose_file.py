"""infra/docker-compose.yml, read statically (no Docker engine here): every ReelStream
service runs a command `reel` accepts, the roles a title needs to be published are there,
and what is published on the host is bound where Docker's port map reaches it."""

from __future__ import annotations

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
    assert {"processors --kafka", "worker transcode", "worker package", "gateway --web", "edge up"} <= roles


def test_published_roles_bind_every_interface_on_the_published_port() -> None:
    for name, service in services().items():
        if service.get("image") != "reelstream:local" or not service.get("ports"):
            continue
        args = build_parser().parse_args(service["command"][1:])
        assert args.host == "0.0.0.0", f"{name} listens on {args.host}: the port map cannot reach it"
        published = {int(p.rsplit(":", 1)[1]) for p in service["ports"]}
        bound = args.port if hasattr(args, "port") and name == "gateway" else args.base_port - 1
        assert bound in published, f"{name} binds {bound}, publishes {published}"


def test_the_roles_get_the_secrets_and_where_segments_come_from() -> None:
    env = services()["gateway"]["environment"]
    for name in ("REEL_KEK", "REEL_GATEWAY_SIGNING_KEYS", "REEL_EDGE_SECRET", "REEL_EDGE_BASE_URL",
                 "REEL_DEFAULT_COUNTRY"):
        assert name in env, name
    assert env["REEL_EDGE_BASE_URL"].endswith(":18399}"), "the origin service's published port"
