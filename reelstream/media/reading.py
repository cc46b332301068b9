"""How far this process's media commands have read into a file, for a progress display.

ffprobe and ffmpeg give no progress of their own while they probe or decode (ffprobe has no
``-progress``), and validating a 100-GB master reads all of it (the packet count). The kernel
knows each open file's offset: a child process's descriptor open on the file, and its ``pos``
in ``/proc/PID/fdinfo/FD``, say how far the read has got. Linux only; elsewhere, or while no
command has the file open, there is no reading (``None``) and the display shows elapsed time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Reading:
    """One command's open descriptor on the file, and how far into the file it is."""

    pid: int
    fd: int
    position: int


def _children(pid: int) -> list[int] | None:
    """``pid``'s children, from each of its threads' ``children`` file (the kernel's own list);
    None where the kernel keeps no such file (built without CONFIG_PROC_CHILDREN)."""
    found: list[int] = []
    try:
        tasks = os.listdir(PROC / str(pid) / "task")
    except OSError:
        return []  # exited
    for task in tasks:
        try:
            found += [int(x) for x in (PROC / str(pid) / "task" / task / "children").read_text().split()]
        except FileNotFoundError:
            if (PROC / str(pid) / "task" / task).exists():
                return None
        except (OSError, ValueError):
            continue  # the thread ended
    return found


def _parents() -> dict[int, list[int]]:
    """Every process's children, from each one's ``stat``: ``pid (comm) state ppid ...``."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        try:
            fd = os.open(f"/proc/{name}/stat", os.O_RDONLY)
            try:
                stat = os.read(fd, 1024)
            finally:
                os.close(fd)
        except OSError:
            continue  # gone since the listing
        # comm may hold spaces and parentheses: split after the last ')'.
        fields = stat.rsplit(b")", 1)[-1].split()
        if len(fields) > 1 and fields[1].isdigit():
            parents.setdefault(int(fields[1]), []).append(int(name))
    return parents


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] | None = None
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        children = _children(pid) if parents is None else parents.get(pid, [])
        if children is None:  # no children files: one scan of every process instead
            parents = _parents()
            children = parents.get(pid, [])
        found += children
        queue += children
    return found


def _position(pid: int, fd: str) -> int | None:
    try:
        for line in (PROC / str(pid) / "fdinfo" / fd).read_text().splitlines():
            if line.startswith("pos:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def reading(path: Path, root: int | None = None) -> Reading | None:
    """The furthest read into ``path`` by a process descended from ``root`` (this process)."""
    if not PROC.is_dir():
        return None
    target = os.path.realpath(path)
    best: Reading | None = None
    for pid in _descendants(os.getpid() if root is None else root):
        fd_dir = PROC / str(pid) / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # exited, or not ours to read
        for fd in fds:
            try:
                if os.readlink(fd_dir / fd) != target:
                    continue
            except OSError:
                continue
            position = _position(pid, fd)
            if position is not None and (best is None or position > best.position):
                best = Reading(pid, int(fd), position)
    return best
