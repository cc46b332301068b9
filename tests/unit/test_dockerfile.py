"""The Dockerfile, read statically (no Docker engine here): the processes run as an
unprivileged user that can write where they write, an init is PID 1, the dependencies are
installed from requirements.lock before the code is copied, and that lock pins every
runtime dependency of pyproject.toml (``scripts/lock.py`` writes it)."""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "infra" / "docker-compose.yml"


def stages() -> list[list[tuple[str, str]]]:
    """Each build stage's (INSTRUCTION, arguments), in order: continuation lines joined,
    comments dropped; a stage starts at its FROM."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in (REPO / "Dockerfile").read_text().splitlines()
                                         if not line.lstrip().startswith("#")))
    steps = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
             for line in text.splitlines() if line.strip()]
    starts = [i for i, (op, _) in enumerate(steps) if op == "FROM"]
    return [steps[a:b] for a, b in zip(starts, [*starts[1:], len(steps)], strict=True)]


def instructions() -> list[tuple[str, str]]:
    """The final stage's: the image that runs."""
    return stages()[-1]


def index(predicate: str, instruction: str) -> int:
    found = [i for i, (op, args) in enumerate(instructions()) if op == instruction and re.search(predicate, args)]
    assert found, f"no {instruction} matching {predicate!r}"
    return found[0]


def env() -> dict[str, str]:
    values: dict[str, str] = {}
    for op, args in instructions():
        if op == "ENV":
            values.update((name, value) for name, _, value in (pair.partition("=") for pair in args.split()))
    return values


def test_the_processes_run_as_an_unprivileged_user_who_owns_the_data_dir() -> None:
    steps = instructions()
    users = [(i, args.strip()) for i, (op, args) in enumerate(steps) if op == "USER"]
    assert users, "no USER: every process runs as root"
    at, user = users[-1]
    assert user not in ("root", "0") and not user.startswith(("root:", "0:"))
    assert all(op not in ("ENTRYPOINT", "CMD") for op, _ in steps[:at]), "USER comes before what runs"
    created = index(rf"useradd .*\b{user}\b", "RUN")
    data_dir = env()["REEL_DATA_DIR"]
    # The data dir and the edge's work dir under it exist in the image and are the user's, so a
    # new named volume mounted there (compose's pop-cache, appliance-cache) starts out writable by it.
    owning = steps[created][1]
    assert re.search(rf"chown -R {user}:\S+ {data_dir}\b", owning)
    made = set(re.search(r"mkdir -p ((?:\S+ )*\S+) &&", owning).group(1).split())  # type: ignore[union-attr]
    mounted = {mount.split(":")[1] for service in yaml.safe_load(COMPOSE.read_text())["services"].values()
               for mount in service.get("volumes", []) if mount.split(":")[1].startswith(f"{data_dir}/")}
    assert mounted and mounted <= made, f"compose mounts {mounted - made} that the image does not make"
    assert env()["HOME"] == data_dir, "libraries that write under ~ need a home the user may write"
    assert any(op == "VOLUME" and args.strip() == data_dir for op, args in steps)
    assert [args for op, args in steps if op == "WORKDIR"][-1] == data_dir, "relative paths land in the volume"


def test_pid_1_is_an_init_that_forwards_signals_and_reaps_children() -> None:
    entrypoint = json.loads([args for op, args in instructions() if op == "ENTRYPOINT"][-1])
    assert entrypoint == ["/usr/bin/tini", "--"]
    assert index(r"apt-get install .*\btini\b", "RUN") >= 0
    # A compose entrypoint would replace tini; `init: true` would put a second init above it.
    for name, service in yaml.safe_load((REPO / "infra/docker-compose.yml").read_text())["services"].items():
        if service.get("image") == "reelstream:local":
            assert "entrypoint" not in service and "init" not in service, name


def test_the_dependencies_are_installed_from_the_lock_before_the_code_is_copied() -> None:
    steps = instructions()
    lock_copied = index(r"^requirements\.lock\s", "COPY")
    lock_installed = index(r"pip install .*--no-deps -r requirements\.lock", "RUN")
    code_copied = min(i for i, (op, args) in enumerate(steps) if op == "COPY" and "requirements.lock" not in args)
    assert lock_copied < lock_installed < code_copied, "a code change would reinstall every dependency"
    package = index(r"pip install .*\s\.(\s|$)", "RUN")
    assert package > code_copied and "--no-deps" in steps[package][1], "only the lock's versions get installed"


def locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        found = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line)
        assert found, f"requirements.lock: {line!r} is not an exact pin NAME==VERSION"
        name = canonicalize_name(found.group(1))
        assert name not in pins, f"requirements.lock pins {name} twice"
        pins[name] = found.group(2)
    return pins


@pytest.mark.parametrize("requirement", tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])
def test_the_lock_pins_every_runtime_dependency_within_its_range(requirement: str) -> None:
    wanted = Requirement(requirement)
    pins = locked()
    name = canonicalize_name(wanted.name)
    assert name in pins, f"{wanted.name} (pyproject.toml) is not in requirements.lock: run scripts/lock.py"
    assert wanted.specifier.contains(pins[name], prereleases=True), \
        f"requirements.lock pins {name}=={pins[name]}, outside pyproject's {wanted.specifier}: run scripts/lock.py"


def test_the_lock_leaves_the_test_tools_out() -> None:
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert not {canonicalize_name(Requirement(r).name) for r in dev} & set(locked())


def lock_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_script", REPO / "scripts" / "lock.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lock_script_follows_requirements_extras_and_markers() -> None:
    lock = lock_script()
    installed = {"app": ("1.0", ["lib>=2", "extra-only; extra == 'fast'", "old-python; python_version < '3.0'"]),
                 "lib": ("2.5", ["base[fast]"]), "base": ("3.0", ["speedup; extra == 'fast'"]),
                 "speedup": ("0.9", []), "extra-only": ("1.0", []), "old-python": ("1.0", [])}
    pinned = lock.closure([Requirement("app==1.*")], lambda name: installed[name])
    assert pinned == {"app": "1.0", "lib": "2.5", "base": "3.0", "speedup": "0.9"}
    assert lock.render(pinned).splitlines()[2:] == ["app==1.0", "base==3.0", "lib==2.5", "speedup==0.9"]
    with pytest.raises(lock.LockError, match="lib>=3 is required but lib 2.5 is installed"):
        lock.closure([Requirement("lib>=3")], lambda name: installed[name])


def test_the_web_page_gets_the_locked_shaka_player_and_finds_it() -> None:
    builder = next(stage for stage in stages()[:-1] if re.search(r"\bAS shaka$", stage[0][1]))
    assert any(op == "COPY" and "web/package-lock.json" in args for op, args in builder)
    assert any(op == "RUN" and re.search(r"\bnpm ci\b", args) for op, args in builder), "the lock's exact version"
    copied = [args.split() for op, args in instructions() if op == "COPY" and args.startswith("--from=shaka ")]
    assert copied and copied[0][1].endswith("/node_modules/shaka-player/dist")
    assert env()["REEL_SHAKA_DIR"] == copied[0][2], "the web app looks where the player was copied"


def test_the_environment_the_suite_runs_in_is_the_one_the_image_installs() -> None:
    # scripts/bootstrap installs with -c requirements.lock; a package upgraded by hand, or a
    # dependency added to pyproject without a new lock, would ship untested versions.
    lock = lock_script()
    expected = lock.render(lock.closure(lock.runtime_requirements(), lock._installed))
    assert (REPO / "requirements.lock").read_text() == expected, (
        "requirements.lock differs from this environment: run .venv/bin/python scripts/lock.py once the suite passes")
