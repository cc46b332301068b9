"""Two writers of one key in the local object store (a redelivered job run twice, two workers
during a group rebalance), threads or processes: the last put wins whole. The data file and
its checksum sidecar are two renames, so without a lock one writer's bytes could end up
beside the other's checksum, and every later read failed with ChecksumMismatch although
both puts had succeeded. Each test races many keys, so the unlocked store fails all of them."""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
from collections.abc import Callable
from functools import partial
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path

import pytest

from reelstream.errors import ChecksumMismatch
from reelstream.stores.localdir import LocalDirObjectStore

ROUNDS = 150
A, B = b"A" * 200_000, b"B" * 200_000


def key(n: int) -> str:
    return f"chunks/t1/h264-360p/{n:04d}.mp4"


def race(*calls: Callable[[], object]) -> None:
    """Run the calls on threads released together, and wait for all of them."""
    go = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        go.wait()
        try:
            call()
        except Exception as e:  # noqa: BLE001 - re-raised on the test's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_concurrent_puts_from_two_threads_leave_one_whole_object(tmp_path: Path) -> None:
    a_store, b_store = LocalDirObjectStore(tmp_path), LocalDirObjectStore(tmp_path)
    for n in range(ROUNDS):
        race(partial(a_store.put, key(n), A), partial(b_store.put, key(n), B))
    # Every key readable (get verifies the checksum), holding one writer's bytes and metadata.
    for n in range(ROUNDS):
        data = a_store.get(key(n))
        assert data in (A, B)
        assert a_store.head(key(n)).size == len(data)


def _put_all(root: Path, data: bytes, go: ProcessBarrier) -> None:
    store = LocalDirObjectStore(root)
    for n in range(ROUNDS):
        go.wait()
        store.put(key(n), data)


def test_concurrent_puts_from_two_processes_leave_one_whole_object(tmp_path: Path) -> None:
    # fork: the worker is this module's function, and a child starts in milliseconds.
    ctx = multiprocessing.get_context("fork")
    go = ctx.Barrier(2)
    workers = [ctx.Process(target=_put_all, args=(tmp_path, data, go)) for data in (A, B)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0]
    store = LocalDirObjectStore(tmp_path)
    assert all(store.get(key(n)) in (A, B) for n in range(ROUNDS))


def test_reads_during_concurrent_puts_never_pair_bytes_and_checksum_of_different_puts(
    tmp_path: Path,
) -> None:
    store = LocalDirObjectStore(tmp_path)
    store.put(key(0), A)
    seen: list[bytes] = []

    def read() -> None:
        seen.append(store.get(key(0)))  # raises ChecksumMismatch on a mixed pair

    for _ in range(ROUNDS):
        race(lambda: store.put(key(0), B), read, lambda: store.put(key(0), A), read)
    assert set(seen) <= {A, B}


def test_a_put_between_the_two_unlinks_of_a_delete_keeps_its_checksum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalDirObjectStore(tmp_path)
    store.put(key(0), A)
    data_path = tmp_path.resolve() / key(0)
    unlink = Path.unlink
    writer = threading.Thread(target=lambda: store.put(key(0), B))

    def unlink_then_put(path: Path, missing_ok: bool = False) -> None:
        unlink(path, missing_ok=missing_ok)
        if path == data_path and writer.ident is None:  # once, on the data file
            # The hand-off: a put of the key right after the delete removed the data file.
            # Unlocked it completes now (well within the wait); locked it waits for the delete.
            writer.start()
            writer.join(timeout=0.5)

    monkeypatch.setattr(Path, "unlink", unlink_then_put)
    store.delete(key(0))
    writer.join()
    monkeypatch.undo()
    # Unlocked, the delete's second unlink took B's checksum: B's bytes stayed, unverifiable.
    assert store.head(key(0)).sha256 is not None
    assert store.get(key(0)) == B


def test_concurrent_sends_of_one_part_keep_its_bytes_and_md5_together(tmp_path: Path) -> None:
    store = LocalDirObjectStore(tmp_path)
    for n in range(ROUNDS // 3):  # completing is slower; an unlocked store fails in the first few
        upload = store.begin_upload(key(n), sha256=hashlib.sha256(A).hexdigest())
        race(partial(store.upload_part, key(n), upload, 1, A),
             partial(store.upload_part, key(n), upload, 1, B))
        held = store.uploaded_parts(key(n), upload)[1]
        if held.md5 == hashlib.md5(A).hexdigest():  # A was sent last: completing must give A
            assert store.complete_upload(key(n), upload, [held]).sha256 == hashlib.sha256(A).hexdigest()
            assert store.get(key(n)) == A
        else:  # B was sent last: the parts say so, and hold B's bytes
            assert held.md5 == hashlib.md5(B).hexdigest()
            with pytest.raises(ChecksumMismatch, match="expected"):  # B is not the object begun
                store.complete_upload(key(n), upload, [held])
