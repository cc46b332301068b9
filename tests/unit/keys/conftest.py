from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reelstream.events.model import Event
from reelstream.keys.kek import AesGcmKek
from reelstream.keys.service import KeyService
from reelstream.stores.sqlite_state import SqliteStateStore

KEK_BYTES = bytes(range(32))


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SqliteStateStore]:
    store = SqliteStateStore(tmp_path / "state.db")
    yield store
    store.close()


@pytest.fixture
def published() -> list[Event]:
    return []


@pytest.fixture
def service(state: SqliteStateStore, published: list[Event]) -> KeyService:
    return KeyService(state, AesGcmKek(KEK_BYTES), published.append, producer="test")
