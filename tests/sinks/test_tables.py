"""What the PostgreSQL and SQLite sinks share: the table, its migration, idempotency, rejections."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import pytest

from hookbus.cloudevent import CloudEvent
from hookbus.sink import ConsumedRecord, Sink, SinkType
from sinks.migrations import POSTGRES as POSTGRES_MIGRATIONS
from sinks.migrations import SQLITE as SQLITE_MIGRATIONS
from sinks.postgres import SINK as POSTGRES
from sinks.sqlite import SINK as SQLITE
from tests.sinks.helpers import context, event


@dataclass
class Table:
    """A table sink under test: how to make an instance, and how to read what it stored."""

    make: Callable[..., Sink]
    """``make()``, or ``make(record_of)`` for a sink told which record each event came from."""
    rows: Callable[[str], Awaitable[list[dict[str, Any]]]]
    kind: str = ""
    location: str = ""
    """The PostgreSQL DSN or the SQLite file."""


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def _maker(sink_type: SinkType[Any], section: dict[str, Any]) -> Callable[..., Sink]:
    def make(record_of: Callable[[CloudEvent], ConsumedRecord | None] | None = None) -> Sink:
        made = context() if record_of is None else replace(context(), record_of=record_of)
        return sink_type.create(sink_type.parse("test", section), made)

    return make


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
        return Table(
            _maker(POSTGRES, {"dsn": dsn, "table": "events"}), lambda query: _postgres_rows(dsn, query), "postgres", dsn
        )
    path = tmp_path / "var" / "hookbus.db"
    return Table(
        _maker(SQLITE, {"path": str(path), "table": "events"}),
        lambda query: _sqlite_rows(path, query),
        "sqlite",
        str(path),
    )


async def test_two_instances_opening_together_apply_the_migration_once(table: Table) -> None:
    sinks = [table.make(), table.make()]
    await asyncio.gather(*(sink.open() for sink in sinks))
    for sink in sinks:
        await sink.close()
    reopened = table.make()
    await reopened.open()
    await reopened.close()
    migrations = await table.rows("SELECT table_name, version FROM hookbus_schema_migrations ORDER BY version")
    latest = len(POSTGRES_MIGRATIONS if table.kind == "postgres" else SQLITE_MIGRATIONS)
    assert migrations == [{"table_name": "events", "version": version} for version in range(1, latest + 1)]


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


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def _write(sink: Sink, batch: list[CloudEvent]) -> Any:
    await sink.open()
    try:
        return await sink.write(batch)
    finally:
        await sink.close()


async def test_a_nul_is_stored_the_same_way_by_both_databases(table: Table) -> None:
    # PostgreSQL's text and jsonb cannot hold U+0000; SQLite can. Both store the six characters \u0000 instead.
    nul = CloudEvent(
        id="officernd-main:evt-\u0000",
        source="hookbus/officernd-main",
        type="officernd.member.created",
        subject="member/\u00001",
        time="2024-05-01T10:00:00Z",
        data={"note": "nul \u0000 inside", "k\u0000": ["\u0000"], "literal": "\\u0000"},
        extensions={"provider": "officernd", "partitionkey": "member-\u0000"},
    )
    result = await _write(table.make(), [event(1), nul])
    assert (len(result.written), result.rejected) == (2, [])
    (stored,) = await table.rows("SELECT * FROM events WHERE id <> 'officernd-main:evt-1'")
    assert stored["id"] == "officernd-main:evt-\\u0000"
    assert stored["subject"] == "member/\\u00001"
    assert stored["partition_key"] == "member-\\u0000"
    escaped = {"note": "nul \\u0000 inside", "k\\u0000": ["\\u0000"], "literal": "\\u0000"}
    assert _json(stored["data"]) == escaped
    assert _json(stored["event"])["data"] == escaped
    assert _json(stored["event"])["id"] == stored["id"]


async def test_times_compare_with_the_rfc_3339_form_of_the_events(table: Table) -> None:
    times = ["2025-12-31T23:59:59.999Z", "2026-01-01T00:00:00.25Z", "2026-01-01T02:00:00+01:00", "2026-03-01T08:00:00Z"]
    await _write(table.make(), [event(number, time=moment) for number, moment in enumerate(times)])
    after = await table.rows("SELECT id FROM events WHERE time >= '2026-01-01T00:00:01Z' ORDER BY time")
    assert [row["id"] for row in after] == [event(2).id, event(3).id]
    ordered = await table.rows("SELECT id FROM events ORDER BY time")
    assert [row["id"] for row in ordered] == [event(number).id for number in range(4)]
    if table.kind == "sqlite":
        stored = await table.rows("SELECT time, received_at, written_at FROM events ORDER BY time")
        assert [row["time"] for row in stored] == [
            "2025-12-31T23:59:59.999000Z",
            "2026-01-01T00:00:00.250000Z",
            "2026-01-01T01:00:00.000000Z",
            "2026-03-01T08:00:00.000000Z",
        ]
        assert stored[0]["received_at"] == "2024-05-01T10:00:01.500000Z"
        assert all(len(row["written_at"]) == len("2026-01-01T00:00:00.000000Z") for row in stored)
        assert all(row["written_at"].endswith("Z") for row in stored)


async def test_a_row_carries_the_partition_and_offset_of_the_first_record_written(table: Table) -> None:
    positions = {event(number).id: Record("events", number % 2, 100 + number) for number in range(4)}
    first = await _write(table.make(lambda item: positions.get(item.id)), [event(number) for number in range(4)])
    assert len(first.written) == 4
    # The same id again, read from another record (a redelivery, a replay): the row keeps the first.
    again = await _write(table.make(lambda _event: Record("events", 1, 999)), [event(0), event(4)])
    assert len(again.written) == 2
    # Outside the runner there is no record: the columns are empty.
    await _write(table.make(), [event(5)])
    rows = await table.rows("SELECT id, kafka_partition, kafka_offset FROM events ORDER BY id")
    assert {row["id"]: (row["kafka_partition"], row["kafka_offset"]) for row in rows} == {
        event(0).id: (0, 100),
        event(1).id: (1, 101),
        event(2).id: (0, 102),
        event(3).id: (1, 103),
        event(4).id: (1, 999),
        event(5).id: (None, None),
    }


async def test_the_columns_consumers_query_are_indexed(table: Table) -> None:
    await _write(table.make(), [])
    if table.kind == "postgres":
        found = await table.rows("SELECT indexdef AS definition FROM pg_indexes WHERE tablename = 'events'")
    else:
        found = await table.rows("SELECT sql AS definition FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
    definitions = " | ".join(str(row["definition"]).replace('"', "") for row in found)
    for columns in ("(subject, time)", "(type, time)", "(partition_key)", "(kafka_partition, kafka_offset)"):
        assert columns in definitions, definitions


async def test_a_table_of_the_first_version_is_migrated_in_place(table: Table) -> None:
    # The table as version 1 made it, with a row written then (SQLite's times in the old +00:00 form).
    old = "INSERT INTO events (id, type, source, time, received_at, data, event) VALUES ({values})"
    if table.kind == "postgres":
        connection = await asyncpg.connect(table.location)
        try:
            await connection.execute(
                "CREATE TABLE hookbus_schema_migrations (table_name text NOT NULL, version integer NOT NULL,"
                " description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),"
                " PRIMARY KEY (table_name, version))"
            )
            for statement in POSTGRES_MIGRATIONS[0].for_table("events"):
                await connection.execute(statement)
            await connection.execute("INSERT INTO hookbus_schema_migrations VALUES ('events', 1, 'events table')")
            await connection.execute(
                old.format(values="'old', 't', 's', '2024-05-01T10:00:00Z', '2024-05-01T10:00:01.5Z', '{}', '{}'")
            )
        finally:
            await connection.close()
    else:
        path = Path(table.location)
        path.parent.mkdir(parents=True)
        with sqlite3.connect(path) as connection:
            connection.execute(
                "CREATE TABLE hookbus_schema_migrations (table_name TEXT NOT NULL, version INTEGER NOT NULL,"
                " description TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT '', PRIMARY KEY (table_name, version))"
            )
            for statement in SQLITE_MIGRATIONS[0].for_table("events"):
                connection.execute(statement)
            connection.execute("INSERT INTO hookbus_schema_migrations VALUES ('events', 1, 'events table', '')")
            connection.execute(
                old.format(
                    values="'old', 't', 's', '2024-05-01T10:00:00+00:00', '2024-05-01T10:00:01.500000+00:00',"
                    " '{}', '{}'"
                )
            )
    result = await _write(table.make(lambda _event: Record("events", 2, 7)), [event(1)])
    assert len(result.written) == 1
    rows = await table.rows("SELECT id, time, received_at, kafka_partition, kafka_offset FROM events ORDER BY id")
    assert [(row["id"], row["kafka_partition"], row["kafka_offset"]) for row in rows] == [
        (event(1).id, 2, 7),
        ("old", None, None),
    ]
    if table.kind == "sqlite":
        assert (rows[1]["time"], rows[1]["received_at"]) == (
            "2024-05-01T10:00:00.000000Z",
            "2024-05-01T10:00:01.500000Z",
        )
        later = await table.rows("SELECT id FROM events WHERE time >= '2024-05-01T09:00:00Z' ORDER BY id")
        assert len(later) == 2
