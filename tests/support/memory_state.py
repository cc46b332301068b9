"""A dict-backed StateReader for unit-testing processors without any store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reelstream.processors.base import Outcome
from reelstream.stores.ports import Row, ViewSpec


class MemoryState:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, tuple[Any, ...]], Row] = {}

    def get(self, spec: ViewSpec, key: Sequence[Any]) -> Row | None:
        return self.rows.get((spec.name, tuple(key)))

    def query(self, spec: ViewSpec, partition: Sequence[Any]) -> list[Row]:
        n = len(spec.partition_key)
        found = [(k, r) for (name, k), r in self.rows.items() if name == spec.name and k[:n] == tuple(partition)]
        return [r for _, r in sorted(found, key=lambda kr: kr[0])]

    def apply(self, outcome: Outcome) -> None:
        for spec, values in outcome.writes:
            self.rows[(spec.name, spec.key_of(values))] = Row(values)
