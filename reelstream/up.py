"""`reel up`: the whole platform on one machine, as separate processes like a deployment.

Each role (processors, transcode workers, packaging worker, gateways, edge tiers) runs
as its own `reel ...` child with the same settings, its output in
``<data dir>/logs/<role>.log``. If any child dies, `reel up` says which, shows the end of
its log and stops the rest: nothing fails silently. The sample title is ingested once;
when it is published, the URL of the page that plays it is printed.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reelstream.config import Settings
from reelstream.cpus import usable_cores
from reelstream.errors import ReelStreamError


class RoleFailed(ReelStreamError):
    """A child process of `reel up` exited while the platform was running."""


class PortInUse(ReelStreamError):
    """A port `reel up` would serve on is taken (another program, or another `reel up`)."""


def ensure_port_free(host: str, port: int, flag: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as e:
            raise PortInUse(f"port {port} on {host} is in use ({e.strerror}): another program, or another "
                            f"`reel up`, serves there; stop it or pass {flag} PORT") from e


def ensure_secrets(data_dir: Path) -> dict[str, str]:
    """The embedded runtime's secrets, generated once and kept (0600) under the data dir.

    A secret added in a later version is generated into an existing file once; those already
    there are never changed (the KEK wraps every content key). Servers take them from the
    environment instead; set the same variables there.
    """
    path = data_dir / "secrets.json"
    kept = dict(json.loads(path.read_text())) if path.is_file() else {}
    new = {name: make() for name, make in _SECRETS.items() if name not in kept}
    if not new:
        return kept
    data_dir.mkdir(parents=True, exist_ok=True)
    values = {**kept, **new}
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    if kept:
        os.replace(partial, path)
    else:
        try:
            os.link(partial, path)
        except FileExistsError:
            pass  # two first runs at once: the other's file won, and both use it
        finally:
            os.unlink(partial)
    return dict(json.loads(path.read_text()))


_SECRETS: dict[str, Callable[[], str]] = {
    "REEL_KEK": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
    "REEL_GATEWAY_SIGNING_KEYS": lambda: f"k1:{base64.b64encode(secrets.token_bytes(32)).decode()}",
    "REEL_EDGE_SECRET": lambda: secrets.token_urlsafe(32),
    "REEL_INGEST_TOKENS": lambda: secrets.token_urlsafe(32),
    # The deployment's own S3 server credentials (compose's S3 server and its clients read them
    # from infra/.env), never the local server's published ones.
    "REEL_S3_ACCESS_KEY": lambda: f"reel-{secrets.token_hex(8)}",
    "REEL_S3_SECRET_KEY": lambda: secrets.token_urlsafe(32),
}
_COMPOSE_ONLY = ("REEL_S3_ACCESS_KEY", "REEL_S3_SECRET_KEY")


def up_secrets(data_dir: Path) -> dict[str, str]:
    """The secrets `reel up` gives its roles: not the S3 pair made for compose's S3 server (its
    roles use the S3 server their settings name, with that server's keys, or none)."""
    return {name: value for name, value in ensure_secrets(data_dir).items() if name not in _COMPOSE_ONLY}


def child_env(settings: Settings, extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra, "REEL_DATA_DIR": str(settings.data_dir), "REEL_LOG_URL": settings.log_url,
           "REEL_STATE_URL": settings.state_url, "REEL_OBJECTS_URL": settings.objects_url,
           "REEL_GROUP_PREFIX": settings.group_prefix, "REEL_NAMESPACE": settings.namespace}
    for name, value in (("REEL_S3_ACCESS_KEY", settings.s3_access_key), ("REEL_S3_SECRET_KEY", settings.s3_secret_key)):
        if value:
            env[name] = value
    return env


@dataclass
class Supervisor:
    log_dir: Path
    env: dict[str, str]
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, role: str, *argv: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{role}.log").open("ab")
        command = [sys.executable, "-m", "reelstream.cli", *argv]
        print(f"  starting {role}: reel {' '.join(argv)}", flush=True)
        self.children[role] = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                               stdin=subprocess.DEVNULL, start_new_session=True)

    def check(self) -> None:
        for role, child in self.children.items():
            if child.poll() is not None:
                tail = (self.log_dir / f"{role}.log").read_text(errors="replace").splitlines()[-15:]
                raise RoleFailed(f"{role} exited with code {child.returncode}; the end of "
                                 f"{self.log_dir / (role + '.log')}:\n    " + "\n    ".join(tail))

    def stop(self) -> None:
        # Each role is a process group (start_new_session): its own children (a transcode
        # pool's workers, their ffmpegs) are in it and outlive it if it dies, so every group is
        # stopped, its leader alive or not.
        for child in self.children.values():
            _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            while _signal_group(child.pid, 0) and time.monotonic() < deadline:
                time.sleep(0.1)
            _signal_group(child.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to process group ``pgid``; False when no process is left in it."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition: Callable[[], bool], supervisor: Supervisor, timeout: float, what: str,
             progress: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        supervisor.check()  # first: a role that died must not pass for one that answers
        if condition():
            return
        if time.monotonic() > deadline:
            raise RoleFailed(f"timed out after {timeout:.0f}s waiting for {what}; see {supervisor.log_dir}")
        if progress:
            line = progress()
            if line != last:
                print(f"  {line}", flush=True)
                last = line
        time.sleep(1.0)


def _title_row(settings: Settings, title_id: str) -> dict[str, Any] | None:
    from reelstream.processors.catalog.logic import TITLES
    from reelstream.runtime import Runtime

    runtime = Runtime(settings)
    try:
        row = runtime.state.get(TITLES, (title_id,))
        return None if row is None else dict(row.values)
    finally:
        runtime.close()


def title_status(settings: Settings, title_id: str) -> str | None:
    row = _title_row(settings, title_id)
    return None if row is None else row.get("status")


def title_progress(row: dict[str, Any] | None, title_id: str) -> str:
    """One line on how far a title has got: its status and the renditions transcoded."""
    if row is None:
        return f"{title_id}: registering"
    done = len(row.get("renditions") or {})
    return f"{title_id}: {row.get('status')}, {done} rendition{'' if done == 1 else 's'} transcoded"


def run_up(settings: Settings, *, sample: bool = True, host: str = "127.0.0.1", port: int = 8000,
           transcode_processes: int | None = None, edge_port: int = 18400) -> int:
    from reelstream.samples import TITLE_ID, write_sample

    def stop_on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops the children too, like Ctrl-C

    signal.signal(signal.SIGTERM, stop_on_signal)
    ensure_port_free(host, port, "--port")
    extra = up_secrets(settings.data_dir)
    for name, value in extra.items():
        os.environ.setdefault(name, value)
    supervisor = Supervisor(settings.data_dir / "logs", child_env(settings, extra))
    mode = "embedded (no servers)" if settings.embedded else "on servers"
    print(f"ReelStream up, {mode}\n  log:     {settings.log_url}\n  state:   {settings.state_url}\n"
          f"  objects: {settings.objects_url}\n  logs:    {supervisor.log_dir}", flush=True)
    _check_servers(settings)
    processes = transcode_processes or usable_cores()
    try:
        supervisor.start("processors", "processors")
        supervisor.start("transcode", "worker", "transcode", "--processes", str(processes))
        supervisor.start("package", "worker", "package")
        edge_url = _start_edge(settings, supervisor, edge_port, TITLE_ID)
        supervisor.env["REEL_EDGE_BASE_URL"] = edge_url
        # On one machine nothing in front of the gateways sets the viewer's country; a
        # deployment's edge or load balancer does (REEL_COUNTRY_HEADER).
        supervisor.env.setdefault("REEL_DEFAULT_COUNTRY", "US")
        supervisor.start("gateway", "gateway", "--web", "--host", host, "--port", str(port))
        if sample:
            _ingest_sample(settings, supervisor, write_sample, TITLE_ID)
        base = f"http://{host}:{port}"
        gateway_pid = supervisor.children["gateway"].pid
        wait_for(lambda: _health_pid(f"{base}/health") == gateway_pid, supervisor, 60, "the gateways to answer")
        wait_for(lambda: _answers(f"{edge_url}/healthz"), supervisor, 60, "the edge tiers to answer")
        email, password = _demo_account(settings, base)
        print(f"\nWatch it: {base}/web/\n  sign in as {email} / {password} (a subscribed demo account)\n"
              "(Ctrl-C stops everything)", flush=True)
        while True:
            supervisor.check()
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        supervisor.stop()


def _check_servers(settings: Settings) -> None:
    """Reach the log, the state store and the object store, creating topics, views and the
    bucket, and
    check the KEK against the stored keys, before any child starts: a wrong address or KEK
    fails here in one line, not in a child's log after every role has started."""
    from reelstream.keys.config import key_service
    from reelstream.runtime import Runtime
    from reelstream.stores.factory import open_objects

    open_objects(settings.objects_url, settings, create_bucket=True)  # setup: the origin bucket, once
    runtime = Runtime(settings)
    try:
        _ = runtime.log, runtime.state  # lazily opened: touch each
        key_service(runtime)
    finally:
        runtime.close()


def _ingest_sample(settings: Settings, supervisor: Supervisor,
                   write_sample: Callable[[Path], tuple[Path, Path]], title_id: str) -> None:
    if title_status(settings, title_id) == "PUBLISHED":
        print(f"  {title_id} is already published", flush=True)
        return
    master, metadata = write_sample(settings.data_dir / "samples")
    print(f"  ingesting the sample title {title_id} ({master.name})", flush=True)
    ingest = subprocess.run([sys.executable, "-m", "reelstream.cli", "ingest", str(master), "--metadata",
                             str(metadata)], env=supervisor.env, check=False)
    if ingest.returncode != 0:  # its own messages, above, say why
        raise RoleFailed(f"the ingest of the sample title {title_id} failed (`reel ingest` exited with code "
                         f"{ingest.returncode})")
    wait_for(lambda: title_status(settings, title_id) == "PUBLISHED", supervisor, 900,
             f"{title_id} to be transcoded, packaged and published",
             progress=lambda: title_progress(_title_row(settings, title_id), title_id))
    print(f"  {title_progress(_title_row(settings, title_id), title_id)}, packaged", flush=True)


def _start_edge(settings: Settings, supervisor: Supervisor, base_port: int, title_id: str) -> str:
    """Start origin + PoP + ISP appliance (nginx) and return where signed segment URLs point."""
    from reelstream.edge.runner import NginxMissing, find_nginx

    try:
        find_nginx()
    except NginxMissing as e:
        # Without nginx the page still plays, straight from the origin (which does not
        # verify signatures): say so, and how to get the real tiers.
        print(f"  no cache tiers: {e}", flush=True)
        supervisor.start("origin", "edge", "up", "--work-dir", str(settings.data_dir / "edge"),
                         "--base-port", str(base_port), "--origin-only")
        return f"http://127.0.0.1:{base_port - 1}"
    supervisor.start("edge", "edge", "up", "--work-dir", str(settings.data_dir / "edge"),
                     "--base-port", str(base_port), "--popular", title_id)
    # Content steering: manifests name both tiers; the steering server picks one per session.
    supervisor.env.setdefault("REEL_EDGE_PATHWAYS", f"appliance-isp-a=http://127.0.0.1:{base_port + 1},"
                                                    f"pop-1=http://127.0.0.1:{base_port}")
    supervisor.env.setdefault("REEL_STEERING_URL", f"http://127.0.0.1:{base_port - 2}")
    supervisor.env.setdefault("REEL_DEFAULT_ISP", "isp-a")  # nothing in front of the gateways sets it here
    return f"http://127.0.0.1:{base_port + 1}"  # the ISP appliance, which fills from the PoP


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _health_pid(url: str) -> int | None:
    """The pid a ReelStream gateway's ``/health`` names; None for anything else."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            pid = json.loads(response.read()).get("pid")
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return None
    return pid if isinstance(pid, int) else None


DEMO_EMAIL = "demo@reelstream.local"


def _demo_account(settings: Settings, base: str) -> tuple[str, str]:
    """A demo account with a subscription, created once; its password is kept with the secrets."""
    import urllib.error
    import urllib.request
    from datetime import UTC, datetime

    from reelstream.events.model import new_event
    from reelstream.runtime import Runtime

    path = settings.data_dir / "demo-account.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        return saved["email"], saved["password"]
    password = secrets.token_urlsafe(9)
    local, _, domain = DEMO_EMAIL.partition("@")
    # The account outlives its file when the file is deleted: then it is a new demo address.
    for email in (DEMO_EMAIL, f"{local}+{secrets.token_hex(3)}@{domain}"):
        request = urllib.request.Request(f"{base}/auth/accounts", method="POST",
                                         data=json.dumps({"email": email, "password": password,
                                                          "country": "US"}).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                account = json.loads(response.read())
            break
        except urllib.error.HTTPError as e:
            if e.code != 409:
                raise RoleFailed(f"creating the demo account: POST {base}/auth/accounts answered {e.code}: "
                                 f"{e.read().decode(errors='replace')[:300]}") from e
        except urllib.error.URLError as e:
            raise RoleFailed(f"creating the demo account: the gateways at {base} did not answer ({e.reason})") from e
    else:
        raise RoleFailed(f"creating the demo account: {DEMO_EMAIL} and a fresh address both exist already")
    runtime = Runtime(settings)
    try:
        runtime.publish(new_event("EntitlementGranted", {
            "entitlement_id": "demo-subscription", "user_id": account["account_id"], "kind": "SUBSCRIPTION",
            "title_id": None, "plan": "standard", "starts_at": datetime(2020, 1, 1, tzinfo=UTC), "ends_at": None},
            producer="reel up"))
    finally:
        runtime.close()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"email": email, "password": password, "account_id": account["account_id"]}, f)
    return email, password
