"""The PostgreSQL sink against a real server: refused data and lost connections."""

from __future__ import annotations

import asyncpg
import pytest

from hookbus.sink import ProbedSink, Sink, SinkUnavailableError
from sinks.postgres import SINK
from tests.sinks.helpers import context, event
from tests.support import database_dsn

pytestmark = pytest.mark.postgres


def _sink(dsn: str) -> Sink:
    return SINK.create(SINK.parse("archive", {"dsn": dsn, "pool_max_size": 2}), context(name="archive"))


async def _ids(dsn: str) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        return [row["id"] for row in await connection.fetch("SELECT id FROM hookbus_events ORDER BY id")]
    finally:
        await connection.close()


async def test_data_the_database_refuses_rejects_that_event_and_writes_the_others(pg_database: str) -> None:
    # A constraint added by the table's owner refuses one event: the bulk insert fails, and the
    # row-by-row pass finds the one culprit.
    bad = event(2)
    sink = _sink(pg_database)
    await sink.open()
    connection = await asyncpg.connect(pg_database)
    try:
        await connection.execute("ALTER TABLE hookbus_events ADD CONSTRAINT not_two CHECK (subject <> 'member/2')")
    finally:
        await connection.close()
    try:
        result = await sink.write([event(1), bad, event(3)])
    finally:
        await sink.close()
    assert [item.id for item in result.written] == [event(1).id, event(3).id]
    assert [(rejection.event, rejection.reason) for rejection in result.rejected] == [(bad, "invalid_data")]
    assert await _ids(pg_database) == [event(1).id, event(3).id]


async def test_connections_killed_under_the_sink_are_retried_then_it_catches_up(pg_database: str) -> None:
    batches = [[event(number) for number in range(start, start + 20)] for start in range(0, 100, 20)]
    sink = _sink(pg_database)
    await sink.open()
    admin = await asyncpg.connect(pg_database)
    outcomes: list[str] = []
    try:
        for batch in batches:
            # Every connection of the sink's pool dies before each batch, as in a failover.
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert killed >= 1
            pending = list(batch)
            for _ in range(5):
                try:
                    result = await sink.write(pending)
                except SinkUnavailableError:
                    outcomes.append("unavailable")
                    continue
                outcomes.append("retry" if result.retry else "written")
                assert result.rejected == []
                pending = list(result.retry)
                if not pending:
                    break
            assert pending == []
    finally:
        await admin.close()
        await sink.close()
    assert "unavailable" in outcomes or "retry" in outcomes
    assert await _ids(pg_database) == sorted(item.id for batch in batches for item in batch)


async def test_an_unreachable_server_is_retriable_at_open() -> None:
    sink = SINK.create(
        SINK.parse("archive", {"dsn": "postgresql://nobody@127.0.0.1:1/none", "connect_timeout_seconds": 2}),
        context(name="archive"),
    )
    with pytest.raises(SinkUnavailableError) as caught:
        await sink.open()
    assert caught.value.retriable
    with pytest.raises(SinkUnavailableError):
        await sink.write([event(1)])


async def test_the_probe_says_whether_the_database_takes_connections(pg_database: str) -> None:
    sink = _sink(pg_database)
    assert isinstance(sink, ProbedSink)
    assert not await sink.reachable()  # not open yet
    await sink.open()
    admin = await asyncpg.connect(database_dsn(pg_database, "postgres"))
    database = pg_database.rsplit("/", 1)[1]
    try:
        assert await sink.reachable()
        # The database refuses every new connection and drops the sink's: as a server that went away.
        await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
        await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1", database
        )
        assert not await sink.reachable()
        await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
        assert await sink.reachable()
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
        await sink.close()
