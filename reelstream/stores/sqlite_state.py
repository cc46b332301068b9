"""StateStore on SQLite: the embedded runtime's views, one table per ViewSpec.

Several processes on one machine may share the file: WAL lets readers run beside the
one writer, ``busy_timeout`` makes a writer wait for the lock instead of failing, and
migrations run inside ``BEGIN IMMEDIATE`` so two processes starting at once do not
both try to add the same column.

The value rules (``check_row``) live here and the Cassandra adapter imports them, so
both stores accept and refuse exactly the same rows.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reelstream.errors import StateStoreError
from reelstream.stores.ports import APPLIED, Column, Row, StateStore, ViewSpec
from reelstream.stores.private import owner_only_file

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_INT32 = (-(2**31), 2**31 - 1)  # Cassandra's int; SQLite would accept more, so we refuse it too
_INT64 = (-(2**63), 2**63 - 1)

# SQLite's type affinity comes from the declared type's spelling; JSON must be TEXT
# (a NUMERIC affinity would turn the document "5" into the integer 5).
_SQL_TYPE = {
    Column.TEXT: "TEXT",
    Column.INT: "INTEGER",
    Column.BIGINT: "INTEGER",
    Column.DOUBLE: "REAL",
    Column.BOOLEAN: "INTEGER",
    Column.JSON: "TEXT",
}

MIGRATIONS_TABLE = "schema_migrations"


def q(name: str) -> str:
    """A quoted identifier (same syntax in SQLite and CQL), so that a column may be named
    like a keyword ("order", "view", "token"); names are checked lowercase, so quoting
    does not change them."""
    return f'"{name}"'


def qs(names: Iterable[str]) -> str:
    return ", ".join(q(n) for n in names)


# --------------------------------------------------------------------------- shared rules


def check_spec(spec: ViewSpec) -> None:
    """Refuse a spec no store could hold: bad names, or keys that are not typed columns."""
    names = [spec.name, *spec.columns]
    for name in names:
        if not _IDENTIFIER.match(name):
            raise StateStoreError(
                f"view {spec.name!r}: {name!r} is not a valid name "
                "(lowercase letter, then lowercase letters, digits or '_', at most 48)"
            )
    if spec.name == MIGRATIONS_TABLE or APPLIED in spec.columns:
        raise StateStoreError(
            f"view {spec.name!r}: {MIGRATIONS_TABLE!r} and {APPLIED!r} are reserved"
        )
    if not spec.partition_key:
        raise StateStoreError(f"view {spec.name!r}: a partition key is required")
    for key in spec.key_columns:
        if key not in spec.columns:
            raise StateStoreError(f"view {spec.name!r}: key column {key!r} has no type in columns")
        if spec.columns[key] is Column.JSON:
            raise StateStoreError(f"view {spec.name!r}: key column {key!r} cannot be JSON")


def check_value(spec: ViewSpec, name: str, value: Any) -> None:
    """Raise StateStoreError unless ``value`` fits column ``name`` in both stores."""
    kind = spec.columns.get(name)
    if kind is None:
        raise StateStoreError(f"view {spec.name!r} has no column {name!r}")
    if value is None:
        if name in spec.key_columns:
            raise StateStoreError(f"view {spec.name!r}: key column {name!r} cannot be None")
        return
    ok = True
    if kind is Column.TEXT:
        ok = isinstance(value, str)
    elif kind in (Column.INT, Column.BIGINT):
        low, high = _INT32 if kind is Column.INT else _INT64
        # bool is an int subclass; a flag silently stored as 1 is a bug, not a value.
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    elif kind is Column.DOUBLE:
        # NaN is refused: SQLite stores it as NULL, so it would read back as None.
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and not math.isnan(value)
        )
    elif kind is Column.BOOLEAN:
        ok = isinstance(value, bool)
    elif kind is Column.JSON:
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            ok = False
    if not ok:
        raise StateStoreError(
            f"view {spec.name!r}: column {name!r} is {kind.value}, "
            f"got {type(value).__name__} {value!r}"
        )


def check_row(spec: ViewSpec, row: Row) -> None:
    for name, value in row.values.items():
        check_value(spec, name, value)
    for key in spec.key_columns:
        if key not in row.values:
            raise StateStoreError(f"view {spec.name!r}: row lacks key column {key!r}")
    if not all(isinstance(k, str) and isinstance(v, int) for k, v in row.applied.items()):
        raise StateStoreError(
            f"view {spec.name!r}: applied must map 'topic/partition' to an offset"
        )


def check_condition(spec: ViewSpec, column: str, expected: Any) -> None:
    """Refuse a compare-and-set condition both stores could not evaluate alike: Cassandra
    allows no condition on a key column, and ``= null`` differs between the two (SQL's
    NULL never equals; Cassandra's matches a missing row, creating it)."""
    if column not in spec.columns or column in spec.key_columns:
        raise StateStoreError(
            f"view {spec.name!r}: a conditional write must compare a non-key column, got {column!r}"
        )
    if expected is None:
        raise StateStoreError(
            f"view {spec.name!r}: put_if cannot expect {column!r} to be None; "
            "create rows with put_if_absent, and compare a column that is always set"
        )
    check_value(spec, column, expected)


def check_key(spec: ViewSpec, columns: Sequence[str], key: Sequence[Any]) -> None:
    """Refuse a key (or partition) tuple of the wrong length or with values of the wrong type."""
    if len(key) != len(columns):
        raise StateStoreError(
            f"view {spec.name!r}: expected a key of {tuple(columns)}, got {tuple(key)!r}"
        )
    for name, value in zip(columns, key, strict=True):
        check_value(spec, name, value)


def encode(kind: Column, value: Any) -> Any:
    if value is None:
        return None
    if kind is Column.JSON:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if kind is Column.DOUBLE:
        return float(value)
    return value


def decode(kind: Column, value: Any) -> Any:
    if value is None:
        return None
    if kind is Column.JSON:
        return json.loads(value)
    if kind is Column.BOOLEAN:
        return bool(value)
    if kind is Column.DOUBLE:
        return float(value)
    return value


def migration_ids(spec: ViewSpec, existing: Iterable[str] | None) -> list[tuple[str, str | None]]:
    """(migration id, column to add or None for the CREATE) still to apply to ``spec``."""
    if existing is None:
        return [(f"create {spec.name}", None)]
    have = set(existing)
    return [(f"add {spec.name}.{c} {k.value}", c) for c, k in spec.columns.items() if c not in have]


# --------------------------------------------------------------------------- adapter


class SqliteStateStore(StateStore):
    """Views in one SQLite file; safe for several threads and several processes."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000) -> None:
        self._path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        with self._errors("open"):
            self._path.parent.mkdir(parents=True, exist_ok=True)
            owner_only_file(self._path)
            self._conn().execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
                '(id TEXT PRIMARY KEY, "view" TEXT NOT NULL, applied_at TEXT NOT NULL)'
            )

    # -- connections

    def _conn(self) -> sqlite3.Connection:
        # One connection per thread: sqlite3 connections are not safe to share, and
        # check_same_thread=False is only so that close() may close them all.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StateStoreError(f"state store {self._path} is closed")
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a crash may lose the last commits but never corrupts; the
            # log is the source of truth and replays them (their offsets were not applied).
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _errors(self, what: str) -> AbstractContextManager[None]:
        return _translated(f"SQLite state store {self._path}: {what}")

    # -- schema

    def ensure_views(self, specs: Iterable[ViewSpec]) -> None:
        for spec in specs:
            check_spec(spec)
            with self._errors(f"migrating view {spec.name!r}"):
                self._migrate(spec)

    def _migrate(self, spec: ViewSpec) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")  # take the write lock before reading the schema
        try:
            info = conn.execute(f"PRAGMA table_info({q(spec.name)})").fetchall()
            existing = {r[1]: r for r in info} if info else None
            if existing is not None:
                pk = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
                if pk != spec.key_columns:
                    raise StateStoreError(
                        f"view {spec.name!r} exists with key {pk}, spec says {spec.key_columns}; "
                        "a key cannot be migrated, create a new view"
                    )
            for mid, column in migration_ids(spec, existing):
                if column is None:
                    conn.execute(self._create_sql(spec))
                else:
                    sql_type = _SQL_TYPE[spec.columns[column]]
                    conn.execute(f"ALTER TABLE {q(spec.name)} ADD COLUMN {q(column)} {sql_type}")
                conn.execute(
                    f'INSERT OR IGNORE INTO {MIGRATIONS_TABLE} (id, "view", applied_at) '
                    "VALUES (?, ?, ?)",
                    (mid, spec.name, datetime.now(UTC).isoformat()),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _create_sql(spec: ViewSpec) -> str:
        cols = [f"{q(c)} {_SQL_TYPE[k]}" for c, k in spec.columns.items()]
        keys = qs(spec.key_columns)
        return (
            f"CREATE TABLE {q(spec.name)} ({', '.join(cols)}, {q(APPLIED)} TEXT NOT NULL, "
            f"PRIMARY KEY ({keys})) WITHOUT ROWID"
        )

    # -- rows

    def _row(self, spec: ViewSpec, names: Sequence[str], record: Sequence[Any]) -> Row:
        values = {
            n: decode(spec.columns[n], v)
            for n, v in zip(names, record, strict=True)
            if n != APPLIED
        }
        return Row(values=values, applied=json.loads(record[-1]))

    def _select(self, spec: ViewSpec) -> tuple[list[str], str]:
        names = [*spec.columns, APPLIED]
        return names, f"SELECT {qs(names)} FROM {q(spec.name)}"

    def get(self, spec: ViewSpec, key: Sequence[Any]) -> Row | None:
        check_key(spec, spec.key_columns, key)
        names, sql = self._select(spec)
        where = " AND ".join(f"{q(c)} = ?" for c in spec.key_columns)
        with self._errors(f"reading {spec.name!r}"):
            record = self._conn().execute(f"{sql} WHERE {where}", tuple(key)).fetchone()
        return None if record is None else self._row(spec, names, record)

    @staticmethod
    def _params(spec: ViewSpec, row: Row) -> tuple[list[str], list[Any]]:
        """Column names (``applied`` last) and their encoded values for writing ``row``."""
        check_row(spec, row)
        params = [encode(k, row.values.get(c)) for c, k in spec.columns.items()]
        params.append(json.dumps(row.applied, separators=(",", ":"), sort_keys=True))
        return [*spec.columns, APPLIED], params

    def _insert_sql(self, spec: ViewSpec, names: Sequence[str]) -> str:
        return (
            f"INSERT INTO {q(spec.name)} ({qs(names)}) VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT ({qs(spec.key_columns)})"
        )

    def put(self, spec: ViewSpec, row: Row) -> None:
        names, params = self._params(spec, row)
        updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in names if c not in spec.key_columns)
        sql = f"{self._insert_sql(spec, names)} DO UPDATE SET {updates}"
        with self._errors(f"writing {spec.name!r}"):
            self._conn().execute(sql, params)

    # Both conditional writes are one statement on an autocommit connection: SQLite runs
    # it under the database's write lock, so the check and the write are one atomic step
    # across threads and processes alike; rowcount says whether it wrote.

    def put_if_absent(self, spec: ViewSpec, row: Row) -> bool:
        names, params = self._params(spec, row)
        with self._errors(f"writing {spec.name!r} if absent"):
            cursor = self._conn().execute(f"{self._insert_sql(spec, names)} DO NOTHING", params)
        return cursor.rowcount == 1

    def put_if(self, spec: ViewSpec, row: Row, column: str, expected: Any) -> bool:
        check_condition(spec, column, expected)
        names, params = self._params(spec, row)
        sets = [(c, p) for c, p in zip(names, params, strict=True) if c not in spec.key_columns]
        where = " AND ".join(f"{q(c)} = ?" for c in spec.key_columns)
        sql = (
            f"UPDATE {q(spec.name)} SET {', '.join(f'{q(c)} = ?' for c, _ in sets)} "
            f"WHERE {where} AND {q(column)} = ?"
        )
        args = [p for _, p in sets] + [encode(spec.columns[k], row.values[k]) for k in spec.key_columns]
        args.append(encode(spec.columns[column], expected))
        with self._errors(f"writing {spec.name!r} if {column!r} is unchanged"):
            cursor = self._conn().execute(sql, args)
        return cursor.rowcount == 1

    def query(self, spec: ViewSpec, partition: Sequence[Any]) -> list[Row]:
        check_key(spec, spec.partition_key, partition)
        names, sql = self._select(spec)
        where = " AND ".join(f"{q(c)} = ?" for c in spec.partition_key)
        order = qs(spec.clustering_key) or "1"
        with self._errors(f"querying {spec.name!r}"):
            records = (
                self._conn()
                .execute(f"{sql} WHERE {where} ORDER BY {order}", tuple(partition))
                .fetchall()
            )
        return [self._row(spec, names, r) for r in records]

    def scan(self, spec: ViewSpec) -> Iterator[Row]:
        names, sql = self._select(spec)
        with self._errors(f"scanning {spec.name!r}"):
            # fetchall: a cursor left open across yields would pin a WAL snapshot.
            records = self._conn().execute(f"{sql} ORDER BY {qs(spec.key_columns)}").fetchall()
        return iter([self._row(spec, names, r) for r in records])

    def truncate(self, spec: ViewSpec) -> None:
        with self._errors(f"truncating {spec.name!r}"):
            self._conn().execute(f"DELETE FROM {q(spec.name)}")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def drop(self) -> None:
        self.close()
        try:
            for path in (self._path, self._path.with_name(f"{self._path.name}-wal"),
                         self._path.with_name(f"{self._path.name}-shm")):
                path.unlink(missing_ok=True)
        except OSError as e:
            raise StateStoreError(f"could not remove the state store {self._path}: {e}") from e


@contextmanager
def _translated(context: str) -> Iterator[None]:
    """Turn sqlite3 errors into StateStoreError naming what was being done."""
    try:
        yield
    except sqlite3.Error as e:
        raise StateStoreError(f"{context}: {e}") from e
