"""StateStore on Cassandra: one table per ViewSpec, keyed the way its query reads.

Each view becomes ``PRIMARY KEY ((partition cols), clustering cols)``: a read names the
whole partition key, so it touches one partition on one replica set, and rows come back
in clustering order without sorting. Reads and writes run at LOCAL_QUORUM (with RF 1
locally that is one replica; with RF 3 it tolerates one node down per DC).

Schema changes are migrations, recorded in ``schema_migrations`` and applied by
``ensure_views``; every DDL waits for schema agreement, because a statement prepared
against a node that has not seen a new column fails or silently drops the column.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from cassandra import ConsistencyLevel, DriverException
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    NoHostAvailable,
    Session,
)
from cassandra.connection import ConnectionException
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.protocol import ErrorMessage
from cassandra.query import PreparedStatement, SimpleStatement, tuple_factory

from reelstream.errors import StateStoreError
from reelstream.stores.ports import APPLIED, Column, Row, StateStore, ViewSpec
from reelstream.stores.sqlite_state import (
    MIGRATIONS_TABLE,
    check_condition,
    check_key,
    check_row,
    check_spec,
    decode,
    encode,
    migration_ids,
    q,
    qs,
)

_CQL_TYPE = {
    Column.TEXT: "text",
    Column.INT: "int",
    Column.BIGINT: "bigint",
    Column.DOUBLE: "double",
    Column.BOOLEAN: "boolean",
    Column.JSON: "text",
}
_KEYSPACE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# Everything the driver raises for a failed request, a lost connection or a server error.
_DRIVER_ERRORS = (DriverException, NoHostAvailable, ConnectionException, ErrorMessage)


class CassandraStateStore(StateStore):
    """Views in one keyspace, created (SimpleStrategy) if missing."""

    def __init__(
        self,
        hosts: list[str],
        port: int,
        keyspace: str,
        replication_factor: int = 1,
        *,
        protocol_version: int = 5,
        connect_timeout: float = 5.0,
        request_timeout: float = 30.0,
        page_size: int = 500,
    ) -> None:
        if not _KEYSPACE.match(keyspace):
            raise StateStoreError(
                f"invalid keyspace name {keyspace!r}: lowercase letters, digits, '_'"
            )
        self._keyspace = keyspace
        self._page_size = page_size
        self._prepared: dict[tuple[Any, ...], PreparedStatement] = {}
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
            consistency_level=ConsistencyLevel.LOCAL_QUORUM,
            request_timeout=request_timeout,
            row_factory=tuple_factory,
        )
        self._cluster = Cluster(
            contact_points=hosts,
            port=port,
            protocol_version=protocol_version,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=connect_timeout,
            control_connection_timeout=connect_timeout,
            max_schema_agreement_wait=30,
            # The driver's default backs off to 600 s: after a node restart (~30 s down) its
            # next try came up to 17 s after the node was back, every read and write failing
            # meanwhile (tests/integration/test_server_faults.py); a try every 2 s costs nothing.
            reconnection_policy=ExponentialReconnectionPolicy(base_delay=0.5, max_delay=2.0),
        )
        where = f"Cassandra at {','.join(hosts)}:{port}"
        try:
            with _translated(f"{where}: connecting (is the node running: bash infra/local/start.sh cassandra; is "
                             "the address right: REEL_STATE_URL, or REEL_CASSANDRA_HOSTS/PORT with --cassandra?)"):
                self._session: Session = self._cluster.connect()
            with _translated(f"{where}: creating keyspace {keyspace!r}"):
                self._ddl(
                    f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
                    "{'class': 'SimpleStrategy', "
                    f"'replication_factor': {int(replication_factor)}}}"
                )
                self._session.set_keyspace(keyspace)
                self._ddl(
                    f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
                    '(id text PRIMARY KEY, "view" text, applied_at timestamp) '
                    "WITH comment = 'schema migrations applied by ensure_views'"
                )
        except BaseException:
            self._cluster.shutdown()
            raise

    # -- schema

    def _ddl(self, statement: str) -> None:
        result = self._session.execute(statement)
        if not result.response_future.is_schema_agreed:
            raise StateStoreError(
                f"schema change not agreed by every node within 30 s: {statement[:80]}...; "
                "check `nodetool describecluster` and retry"
            )

    def _columns(self, table: str) -> dict[str, tuple[str, int, str]] | None:
        """column -> (kind, position, cql type) of ``table``, or None when it does not exist."""
        # system_schema is node-local: ONE is the only level that makes sense for it.
        statement = SimpleStatement(
            "SELECT column_name, kind, position, type FROM system_schema.columns "
            "WHERE keyspace_name = %s AND table_name = %s",
            consistency_level=ConsistencyLevel.ONE,
        )
        rows = self._session.execute(statement, (self._keyspace, table)).all()
        return {r[0]: (r[1], r[2], r[3]) for r in rows} or None

    def ensure_views(self, specs: Iterable[ViewSpec]) -> None:
        for spec in specs:
            check_spec(spec)
            with _translated(f"migrating view {spec.name!r}"):
                self._migrate(spec)

    def _migrate(self, spec: ViewSpec) -> None:
        existing = self._columns(spec.name)
        if existing is not None:
            self._check_compatible(spec, existing)
        for mid, column in migration_ids(spec, existing):
            if column is None:
                self._ddl(self._create_cql(spec))
            else:
                try:
                    cql_type = _CQL_TYPE[spec.columns[column]]
                    self._ddl(f"ALTER TABLE {q(spec.name)} ADD {q(column)} {cql_type}")
                except _DRIVER_ERRORS:
                    # Another process may have added it between our read and our ALTER.
                    if column not in (self._columns(spec.name) or {}):
                        raise
            self._session.execute(
                f'INSERT INTO {MIGRATIONS_TABLE} (id, "view", applied_at) VALUES (%s, %s, %s)',
                (mid, spec.name, datetime.now(UTC)),
            )
        self._prepared = {k: v for k, v in self._prepared.items() if k[0] != spec.name}

    @staticmethod
    def _check_compatible(spec: ViewSpec, existing: dict[str, tuple[str, int, str]]) -> None:
        def key(kind: str) -> tuple[str, ...]:
            return tuple(
                c
                for c, _ in sorted(
                    ((c, v[1]) for c, v in existing.items() if v[0] == kind), key=lambda cv: cv[1]
                )
            )

        have = (key("partition_key"), key("clustering"))
        if have != (spec.partition_key, spec.clustering_key):
            raise StateStoreError(
                f"view {spec.name!r} exists with key {have}, spec says "
                f"{(spec.partition_key, spec.clustering_key)}; "
                "a key cannot be migrated, create a new view"
            )
        for column, kind in spec.columns.items():
            if column in existing and existing[column][2] != _CQL_TYPE[kind]:
                raise StateStoreError(
                    f"view {spec.name!r}: column {column!r} is {existing[column][2]} in Cassandra, "
                    f"spec says {kind.value}; a type cannot be migrated, add a new column"
                )

    @staticmethod
    def _create_cql(spec: ViewSpec) -> str:
        cols = ", ".join(f"{q(c)} {_CQL_TYPE[k]}" for c, k in spec.columns.items())
        clustering = "".join(f", {q(c)}" for c in spec.clustering_key)
        comment = spec.query.replace("'", "''")
        # Partition key first, in its own parentheses: that is what every read must name.
        return (
            f"CREATE TABLE IF NOT EXISTS {q(spec.name)} ({cols}, {q(APPLIED)} text, "
            f"PRIMARY KEY (({qs(spec.partition_key)}){clustering})) "
            f"WITH comment = '{comment}'"
        )

    # -- statements

    def _statement(self, spec: ViewSpec, op: str) -> PreparedStatement:
        # Keyed by the column set too: a spec that gained a column needs new statements.
        cache_key = (spec.name, tuple(spec.columns.items()), op)
        prepared = self._prepared.get(cache_key)
        if prepared is None:
            names = qs([*spec.columns, APPLIED])
            # Qualified: a statement prepared against the session's USE keyspace draws a
            # server warning ("an anti-pattern") that the driver logged on every command.
            table = f"{q(self._keyspace)}.{q(spec.name)}"
            if op in ("put", "put_if_absent"):
                cql = (
                    f"INSERT INTO {table} ({names}) "
                    f"VALUES ({', '.join('?' * (len(spec.columns) + 1))})"
                ) + (" IF NOT EXISTS" if op == "put_if_absent" else "")
            elif op.startswith("put_if "):
                # Bound as: the non-key values (applied last), the key, the expected value.
                sets = ", ".join(f"{q(c)} = ?" for c in [*spec.columns, APPLIED] if c not in spec.key_columns)
                where = " AND ".join(f"{q(c)} = ?" for c in spec.key_columns)
                cql = f"UPDATE {table} SET {sets} WHERE {where} IF {q(op.removeprefix('put_if '))} = ?"
            else:
                key = {"get": spec.key_columns, "query": spec.partition_key, "scan": ()}[op]
                where = " AND ".join(f"{q(c)} = ?" for c in key)
                cql = f"SELECT {names} FROM {table}" + (f" WHERE {where}" if where else "")
            with _translated(f"preparing a statement for {spec.name!r}"):  # a round trip: it can fail too
                prepared = self._session.prepare(cql)
            self._prepared[cache_key] = prepared
        return prepared

    def _row(self, spec: ViewSpec, record: Sequence[Any]) -> Row:
        values = {
            c: decode(k, v) for (c, k), v in zip(spec.columns.items(), record[:-1], strict=True)
        }
        return Row(values=values, applied=json.loads(record[-1]) if record[-1] else {})

    # -- rows

    def get(self, spec: ViewSpec, key: Sequence[Any]) -> Row | None:
        check_key(spec, spec.key_columns, key)
        with _translated(f"reading {spec.name!r}"):
            record = self._session.execute(self._statement(spec, "get"), tuple(key)).one()
        return None if record is None else self._row(spec, record)

    def put(self, spec: ViewSpec, row: Row) -> None:
        params = self._put_params(spec, row)
        with _translated(f"writing {spec.name!r}"):
            self._session.execute(self._statement(spec, "put"), params)

    # Lightweight transactions (Paxos) at the profile's serial consistency, SERIAL by
    # default: a condition decided in one DC only (LOCAL_SERIAL) would let two DCs each
    # win the same key. A timeout leaves the outcome unknown (the write may land later);
    # it is a StateStoreError like any other failed write, and a retry may then answer
    # False for a row this caller wrote: a caller that must know reads the row back and
    # compares it with what it wrote.

    def put_if_absent(self, spec: ViewSpec, row: Row) -> bool:
        params = self._put_params(spec, row)
        with _translated(f"writing {spec.name!r} if absent"):
            return bool(self._session.execute(self._statement(spec, "put_if_absent"), params).was_applied)

    def put_if(self, spec: ViewSpec, row: Row, column: str, expected: Any) -> bool:
        check_condition(spec, column, expected)
        values = dict(zip([*spec.columns, APPLIED], self._put_params(spec, row), strict=True))
        params = [v for c, v in values.items() if c not in spec.key_columns]
        params += [values[c] for c in spec.key_columns]
        params.append(encode(spec.columns[column], expected))
        with _translated(f"writing {spec.name!r} if {column!r} is unchanged"):
            result = self._session.execute(self._statement(spec, f"put_if {column}"), params)
            return bool(result.was_applied)

    def put_many(self, rows: Sequence[tuple[ViewSpec, Row]]) -> None:
        # All in flight at once, then one wait (see query_many).
        bound = [(spec, self._statement(spec, "put"), self._put_params(spec, row)) for spec, row in rows]
        with _translated(f"writing {len(bound)} rows"):
            futures = [self._session.execute_async(statement, params) for _, statement, params in bound]
            for future in futures:
                future.result()

    def _put_params(self, spec: ViewSpec, row: Row) -> list[Any]:
        check_row(spec, row)
        # Absent columns are bound as null (a tombstone), not left unset: put replaces the
        # whole row, as it does in SQLite.
        params = [encode(k, row.values.get(c)) for c, k in spec.columns.items()]
        params.append(json.dumps(row.applied, separators=(",", ":"), sort_keys=True))
        return params

    def query(self, spec: ViewSpec, partition: Sequence[Any]) -> list[Row]:
        check_key(spec, spec.partition_key, partition)
        with _translated(f"querying {spec.name!r}"):
            statement = self._statement(spec, "query").bind(tuple(partition))
            statement.fetch_size = self._page_size
            return [self._row(spec, r) for r in self._session.execute(statement)]

    def query_many(self, spec: ViewSpec, partitions: Sequence[Sequence[Any]]) -> list[list[Row]]:
        # Every read in flight at once on the driver's connections, then one wait: one
        # round trip for the batch, and a fraction of the driver's per-call CPU (measured:
        # 0.09 ms per partition in batches of 50, 0.49 ms for a lone synchronous query).
        for partition in partitions:
            check_key(spec, spec.partition_key, partition)
        statement = self._statement(spec, "query")
        with _translated(f"querying {spec.name!r}"):
            futures = []
            for partition in partitions:
                bound = statement.bind(tuple(partition))
                bound.fetch_size = self._page_size
                futures.append(self._session.execute_async(bound))
            return [[self._row(spec, r) for r in future.result()] for future in futures]

    def scan(self, spec: ViewSpec) -> Iterator[Row]:
        # A generator: later pages are fetched as the caller iterates, so their errors must
        # be translated here too, not only the first request's.
        with _translated(f"scanning {spec.name!r}"):
            statement = self._statement(spec, "scan").bind(())
            statement.fetch_size = self._page_size
            for record in self._session.execute(statement):
                yield self._row(spec, record)

    def truncate(self, spec: ViewSpec) -> None:
        with _translated(f"truncating {spec.name!r}"):
            self._session.execute(f"TRUNCATE {q(spec.name)}")

    def drop(self) -> None:
        try:
            with _translated(f"dropping keyspace {self._keyspace!r}"):
                self._ddl(f"DROP KEYSPACE IF EXISTS {q(self._keyspace)}")
        finally:
            self.close()

    def close(self) -> None:
        self._cluster.shutdown()


@contextmanager
def _translated(context: str) -> Iterator[None]:
    """Turn cassandra-driver errors into StateStoreError naming what was being done."""
    try:
        yield
    except _DRIVER_ERRORS as e:
        raise StateStoreError(f"Cassandra: {context}: {e}") from e
