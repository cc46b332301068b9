"""Cassandra's adapter turns every driver error into a StateStoreError, the prepare of a
batch's statement included: a processor host retries a StateStoreError on the same
records, and an untranslated driver error crashed the agent instead (losing its record
under Faust)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from cassandra.cluster import NoHostAvailable

from reelstream.errors import StateStoreError
from reelstream.stores.cassandra import CassandraStateStore
from reelstream.stores.ports import Column, Row, ViewSpec


class Unreachable:
    """The real session, but every prepare fails as it does while the node is down."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)

    def prepare(self, cql: str) -> Any:
        raise NoHostAvailable("Unable to complete the operation against any hosts", {"127.0.0.1:19042": "down"})


@pytest.mark.parametrize("call", ["put_many", "query_many"])
def test_a_batch_whose_prepare_fails_is_a_state_store_error(cassandra_store: CassandraStateStore, call: str) -> None:
    spec = ViewSpec(name=f"faults_{uuid.uuid4().hex[:10]}", partition_key=("k",), clustering_key=(),
                    columns={"k": Column.TEXT, "v": Column.BIGINT}, query="a view for fault tests")
    cassandra_store.ensure_views([spec])
    session = cassandra_store._session
    cassandra_store._session = Unreachable(session)  # type: ignore[assignment]
    try:
        with pytest.raises(StateStoreError, match="Cassandra: preparing a statement"):
            if call == "put_many":
                cassandra_store.put_many([(spec, Row(values={"k": "a", "v": 1}))])
            else:
                cassandra_store.query_many(spec, [("a",)])
    finally:
        cassandra_store._session = session


def test_statements_draw_no_server_warning(cassandra_store: CassandraStateStore,
                                           caplog: pytest.LogCaptureFixture) -> None:
    # Unqualified tables after USE drew "USE <keyspace> with prepared statements is considered
    # to be an anti-pattern" from the server, logged by the driver on every `reel` command.
    spec = ViewSpec(name=f"quiet_{uuid.uuid4().hex[:10]}", partition_key=("k",), clustering_key=(),
                    columns={"k": Column.TEXT, "v": Column.BIGINT}, query="a view for the warning test")
    cassandra_store.ensure_views([spec])
    with caplog.at_level("WARNING"):
        cassandra_store.put(spec, Row(values={"k": "a", "v": 1}))
        assert cassandra_store.get(spec, ("a",)).values["v"] == 1  # type: ignore[union-attr]
        assert [r.values["k"] for r in cassandra_store.query(spec, ("a",))] == ["a"]
        assert len(list(cassandra_store.scan(spec))) == 1
    assert not [r for r in caplog.records if "anti-pattern" in r.getMessage()], caplog.text


def test_an_unreachable_node_says_where_to_look() -> None:
    import socket

    from reelstream.stores.factory import open_state

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(StateStoreError, match=f"Cassandra at 127.0.0.1:{port}: connecting .*start.sh cassandra.*"
                                              "REEL_CASSANDRA_HOSTS/PORT with --cassandra"):
        open_state(f"cassandra://127.0.0.1:{port}/reelstream_nowhere")
