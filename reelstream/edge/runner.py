"""The one place that runs nginx: writes each node's generated config, checks it
(``nginx -t``), starts the master as a supervised child (``daemon off``), reloads it
when the popularity list changes, and stops it. Every command is logged exactly.
"""

from __future__ import annotations

import logging
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from reelstream.edge import nginx
from reelstream.edge.signing import EdgeSecret
from reelstream.edge.topology import EdgeNode, Topology
from reelstream.errors import ConfigError, ReelStreamError

log = logging.getLogger(__name__)
INSTALL_HINT = "install Debian's nginx: sudo apt-get install -y nginx (ReelStream runs it as a user process)"


class NginxMissing(ReelStreamError):
    """No nginx binary on PATH or in /usr/sbin; the message says how to install it."""


class EdgeStartFailed(ReelStreamError):
    """An edge node's config failed ``nginx -t`` or the node did not answer its health check;
    the message holds nginx's own error output."""


class EdgePortUnavailable(EdgeStartFailed):
    """A port of the edge's block could not be bound (taken by another process, most often)."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        super().__init__(
            f"the edge cannot listen on {host}:{port} ({cause.strerror or cause}); the edge "
            "takes a block of ports from its base port - 2 up: choose a free block with "
            "`reel up --edge-port N` or `reel edge up --base-port N`")
        self.host, self.port = host, port


def find_nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise NginxMissing(f"nginx is not installed, so the cache tiers cannot start; {INSTALL_HINT}")
    return found


def _run_logged(argv: list[str]) -> subprocess.CompletedProcess[str]:
    log.info("running: %s", shlex.join(argv))
    return subprocess.run(argv, capture_output=True, text=True, check=False)


class EdgeRunner:
    """Runs every node of a topology; use as a context manager or call start/stop."""

    def __init__(self, topology: Topology, secret: EdgeSecret, popular: Iterable[str] = (),
                 nginx_binary: str | None = None, start_timeout_s: float = 10.0,
                 only: Iterable[str] | None = None) -> None:
        self.topology = topology
        # The nodes run here (``only``: one tier per machine); the others are this topology's
        # too, run elsewhere: a PoP's address for an appliance's fills, nodes steering probes.
        names = set(only) if only is not None else {n.name for n in topology.nodes}
        if unknown := names - {n.name for n in topology.nodes}:
            raise ConfigError(f"edge nodes {sorted(unknown)} are not in the topology")
        self.nodes = tuple(n for n in topology.nodes if n.name in names)
        self.secret = secret
        self.popular = tuple(popular)
        self.nginx = nginx_binary or find_nginx()
        self.start_timeout_s = start_timeout_s
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def write(self, node: EdgeNode) -> Path:
        d = self.topology.node_dir(node)
        for sub in ("logs", "cache", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "popular.map").write_text(nginx.render_popular_map(self.popular))
        path = nginx.config_path(self.topology, node)
        run_as = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
        path.write_text(nginx.render_config(self.topology, node, self.secret, run_as))
        return path

    def start(self) -> Self:
        # PoPs first: an appliance's first fill goes to its PoP.
        for node in sorted(self.nodes, key=lambda n: n.tier != "pop"):
            self._stop_stale(node)
            self.write(node)
            checked = _run_logged(nginx.command(self.nginx, self.topology, node, test_only=True))
            if checked.returncode != 0:
                self.stop()
                raise EdgeStartFailed(f"edge node {node.name}: nginx -t failed: {checked.stderr.strip()}")
            argv = nginx.command(self.nginx, self.topology, node)
            log.info("starting edge node %s (%s) on %s: %s", node.name, node.tier, node.base_url, shlex.join(argv))
            self.processes[node.name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                         stderr=subprocess.PIPE, start_new_session=True)
            self._wait_healthy(node)
        return self

    def _stop_stale(self, node: EdgeNode) -> None:
        """Stop the nginx an earlier run left on this node (a runner killed with SIGKILL cannot
        stop its nginx, which runs in a session of its own and keeps the node's port). Only a
        process that is nginx running this node's config file is touched."""
        pid_file = self.topology.node_dir(node) / "nginx.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()  # "nginx: master process ... -c CONFIG"
        except (OSError, ValueError, IndexError):
            return  # no earlier run, or its nginx is gone
        if b"nginx" not in cmdline or str(nginx.config_path(self.topology, node)).encode() not in cmdline:
            return  # the pid was reused by another process
        log.warning("edge node %s: stopping the nginx (pid %d) an earlier run left on %s", node.name, pid,
                    node.base_url)
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_group(pid, signal.SIGKILL)  # whatever of the group is left

    def _wait_healthy(self, node: EdgeNode) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            process = self.processes[node.name]
            if process.poll() is not None:
                err = process.stderr.read().decode() if process.stderr else ""
                self.stop()
                raise EdgeStartFailed(f"edge node {node.name} exited with {process.returncode}: {err.strip()}")
            try:
                with urllib.request.urlopen(f"{node.base_url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)  # polling a starting process, not a timing assumption
        self.stop()
        raise EdgeStartFailed(f"edge node {node.name} did not answer {node.base_url}/healthz in {self.start_timeout_s}s")

    def set_popular(self, titles: Iterable[str]) -> None:
        """Rewrite the appliances' popularity list and reload them (SIGHUP: new workers take
        the list; in-flight requests finish on the old ones)."""
        titles = tuple(titles)
        for node in (n for n in self.nodes if n.tier == "appliance"):
            path = self.topology.node_dir(node) / "popular.map"
            before = path.read_text() if path.exists() else None
            path.write_text(nginx.render_popular_map(titles))
            process = self.processes.get(node.name)
            if process and process.poll() is None:
                # A reload with a config nginx rejects fails silently and keeps the old one: check first.
                checked = _run_logged(nginx.command(self.nginx, self.topology, node, test_only=True))
                if checked.returncode != 0:
                    if before is not None:
                        path.write_text(before)
                    raise EdgeStartFailed(f"edge node {node.name}: the new popularity list was refused, "
                                          f"the old one stays: {checked.stderr.strip()}")
                log.info("reloading edge node %s: kill -HUP %d", node.name, process.pid)
                workers = _children(process.pid)
                process.send_signal(signal.SIGHUP)
                self._wait_new_workers(process.pid, workers)
        self.popular = titles

    def _wait_new_workers(self, pid: int, before: set[int]) -> None:
        """Until new workers run and the old ones stopped accepting (they exit once idle)."""
        old = {c for c in before if _is_worker(c)}
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            children = _children(pid)
            if {c for c in children - before if _is_worker(c)} and not {c for c in old & children if _is_worker(c)}:
                return
            time.sleep(0.02)

    def stop(self, names: Iterable[str] | None = None) -> None:
        """Stop every node, or only ``names`` (a node taken out of service; steering's probe
        then finds it down)."""
        for name, process in list(self.processes.items()):
            if names is not None and name not in names:
                continue
            if process.poll() is None:
                log.info("stopping edge node %s: kill -QUIT %d", name, process.pid)
                process.send_signal(signal.SIGQUIT)  # graceful: finish in-flight requests
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
            if process.stderr:
                process.stderr.close()
            del self.processes[name]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _is_worker(pid: int) -> bool:
    try:
        return b"worker process" in Path(f"/proc/{pid}/cmdline").read_bytes() and \
            b"shutting down" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            pass
    return found if found or not os.path.exists(f"/proc/{pid}") else set()


def _signal_group(pgid: int, signum: int) -> bool:
    """Signal nginx's process group (its master leads it: started in a session of its own);
    False when nothing is left in it."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _running(pid: int) -> bool:
    """Alive and not a zombie (one its parent has yet to reap counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(") ")[2][:1] not in ("Z", "X", "")
    except OSError:
        return False
