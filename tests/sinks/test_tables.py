"""What the PostgreSQL and SQLite sinks share: the table, its migration, idempotency, rejections."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hookbus.sink import Sink, SinkType
from sinks.postgres import SINK as POSTGRES
from sinks.sqlite import SINK as SQLITE
from tests.sinks.helpers import context, event


@dataclass
class Table:
    """A table sink under test: how to make an instance, and how to read what it stored."""

    make: Callable[[], Sink]
    rows: Callable[[str], Awaitable[list[dict[str, Any]]]]


def _maker(sink_type: SinkType[Any], section: dict[str, Any]) -> Callable[[], Sink]:
    return lambda: sink_type.create(sink_type.parse("test", section), context())


async def _postgres_rows(dsn: str, query: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(dsn)
    try:
        return [dict(row) for row in await connection.fetch(query)]
    finally:
        await connection.close()


async def _sqlite_rows(path: Path, query: str) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(query)]


@pytest.fixture(params=["postgres", "sqlite"])
def table(request: pytest.FixtureRequest, tmp_path: Path) -> Table:
    # Sync, so it can ask for the async pg_database fixture only when PostgreSQL is the one tested.
    if request.param == "postgres":
        dsn: str = request.getfixturevalue("pg_database")
        return Table(_maker(POSTGRES, {"dsn": dsn, "table": "events"}), lambda query: _postgres_rows(dsn, query))
    path = tmp_path / "var" / "hookbus.db"
    return Table(_maker(SQLITE, {"path": str(path), "table": "events"}), lambda query: _sqlite_rows(path, query))


async def test_two_instances_opening_together_apply_the_migration_once(table: Table) -> None:
    sinks = [table.make(), table.make()]
    await asyncio.gather(*(sink.open() for sink in sinks))
    for sink in sinks:
        await sink.close()
    reopened = table.make()
    await reopened.open()
    await reopened.close()
    migrations = await table.rows("SELECT table_name, version FROM hookbus_schema_migrations")
    assert migrations == [{"table_name": "events", "version": 1}]


async def test_a_batch_written_twice_is_one_row_per_id_with_the_canonical_fields(table: Table) -> None:
    batch = [event(number, key=f"member-{number % 3}") for number in range(200)]
    sink = table.make()
    await sink.open()
    try:
        first = await sink.write(batch)
        again = await sink.write(batch[50:150])
    finally:
        await sink.close()
    assert (len(first.written), first.retry, first.rejected) == (200, (), [])
    assert (len(again.written), again.retry, again.rejected) == (100, (), [])
    rows = await table.rows("SELECT * FROM events ORDER BY id")
    assert sorted(row["id"] for row in rows) == sorted(item.id for item in batch)
    stored = next(row for row in rows if row["id"] == "officernd-main:evt-7")
    assert stored["type"] == "officernd.member.created"
    assert stored["source"] == "hookbus/officernd-main"
    assert stored["subject"] == "member/7"
    assert stored["provider"] == "officernd"
    assert stored["partition_key"] == "member-1"
    assert str(stored["time"]).replace(" ", "T").startswith("2024-05-01T10:00:00")
    assert str(stored["received_at"]).replace(" ", "T").startswith("2024-05-01T10:00:01.5")
    data = stored["data"] if isinstance(stored["data"], dict) else json.loads(stored["data"])
    assert data == {"number": 7, "name": "member 7"}
    whole = json.loads(stored["event"]) if isinstance(stored["event"], str) else stored["event"]
    assert whole == event(7, key="member-1").to_dict()


async def test_an_event_with_a_bad_time_is_rejected_alone(table: Table) -> None:
    bad = event(2, time="yesterday")
    sink = table.make()
    await sink.open()
    try:
        result = await sink.write([event(1), bad, event(3)])
    finally:
        await sink.close()
    assert [item.id for item in result.written] == [event(1).id, event(3).id]
    assert [(rejection.event, rejection.reason) for rejection in result.rejected] == [(bad, "invalid_time")]
    assert [row["id"] for row in await table.rows("SELECT id FROM events ORDER BY id")] == [event(1).id, event(3).id]
