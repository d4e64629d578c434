"""``hookbus sink`` end to end: the events topic into PostgreSQL through a real broker."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hookbus.cloudevent import Mode
from hookbus.config import KafkaConfig
from hookbus.delivery import DeliveryReport, Outcome
from hookbus.kafka import make_admin
from sinks.runner import run_sink
from tests.normalizer.test_service import topic_size
from tests.sinks.helpers import (
    committed_offsets,
    config_with,
    event,
    eventually,
    header,
    publish,
    read_topic,
    running_sink,
)

pytestmark = [pytest.mark.kafka]


def _archive(dsn: str, **runner: object) -> dict[str, object]:
    return {"type": "postgres", "dsn": dsn, "batch_size": 25, "batch_timeout_seconds": 0.2, **runner}


async def _ids(dsn: str) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        exists = await connection.fetchval("SELECT to_regclass('hookbus_events') IS NOT NULL")
        return [row["id"] for row in await connection.fetch("SELECT id FROM hookbus_events")] if exists else []
    finally:
        await connection.close()


@pytest.mark.postgres
async def test_events_become_rows_and_what_cannot_be_written_is_dead_lettered(
    kafka_config: KafkaConfig, pg_database: str
) -> None:
    config = config_with({"archive": _archive(pg_database, types=["officernd.*"])}, kafka_config)
    wanted = [event(number, key=f"member-{number % 4}") for number in range(60)]
    other_type = event(100, type="october.new_offer")
    bad_time = event(101, time="not a time")
    poison = (b"k", b"this is not a CloudEvent", [("x-trace", b"abc")])
    await publish(kafka_config, [*wanted[:30], poison, other_type, bad_time, *wanted[30:]])
    total = len(wanted) + 3

    deliveries = kafka_config.deliveries_topic
    async with running_sink(config, "archive"):
        rows = await eventually(lambda: _rows_if(pg_database, len(wanted)))
        dlq = f"{kafka_config.events_topic}.dlq.archive"
        letters = await read_topic(kafka_config, dlq, 2)
        await eventually(lambda: _committed_is(kafka_config, total))
        reports = [DeliveryReport.from_json(record.value) for record in await read_topic(kafka_config, deliveries, 61)]

    assert sorted(rows) == sorted(item.id for item in wanted)
    # A report for each event it wrote or refused; none for what is not an event, or was filtered out.
    assert sorted(item.event_id for item in reports if item.outcome is Outcome.WRITTEN) == sorted(rows)
    [refused_report] = [item for item in reports if item.outcome is Outcome.DEAD_LETTERED]
    assert (refused_report.event_id, refused_report.reason) == (bad_time.id, "invalid_time")
    assert refused_report.sink == "archive"
    assert refused_report.dead_letter_topic == dlq
    assert await topic_size(kafka_config, deliveries) == 61
    by_reason = {header(letter, "hookbus-dlq-reason"): letter for letter in letters}
    assert set(by_reason) == {"not_a_cloudevent", "invalid_time"}
    unread = by_reason["not_a_cloudevent"]
    assert (unread.key, unread.value, header(unread, "x-trace")) == (b"k", b"this is not a CloudEvent", "abc")
    assert (header(unread, "hookbus-dlq-stage"), header(unread, "hookbus-dlq-sink")) == ("read", "archive")
    assert header(unread, "hookbus-dlq-topic") == kafka_config.events_topic
    refused = by_reason["invalid_time"]
    assert header(refused, "ce_id") == bad_time.id
    assert header(refused, "hookbus-dlq-stage") == "write"
    assert await committed_offsets(kafka_config, "hookbus-sink-archive", kafka_config.events_topic) == total


async def _rows_if(dsn: str, count: int) -> list[str] | None:
    rows = await _ids(dsn)
    return rows if len(rows) >= count else None


async def _committed_is(kafka: KafkaConfig, total: int) -> bool:
    return await committed_offsets(kafka, "hookbus-sink-archive", kafka.events_topic) == total


@pytest.mark.postgres
async def test_offsets_are_committed_only_after_the_write(kafka_config: KafkaConfig, pg_database: str) -> None:
    config = config_with({"archive": _archive(pg_database)}, kafka_config)
    events = [event(number, key=f"member-{number % 5}") for number in range(40)]

    # First run: the table exists, then a lock makes the sink's write hang mid-batch.
    async with running_sink(config, "archive"):
        await publish(kafka_config, events[:1])
        assert await eventually(lambda: _rows_if(pg_database, 1))
    blocker = await asyncpg.connect(pg_database)
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute("LOCK TABLE hookbus_events IN ACCESS EXCLUSIVE MODE")
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(run_sink(config, "archive", stop=stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 60)
        await publish(kafka_config, events[1:])
        assert await eventually(lambda: _waiting_on_lock(blocker))
        # The runner dies in the middle of the write, as a killed process would.
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await committed_offsets(kafka_config, "hookbus-sink-archive", kafka_config.events_topic) == 1
    finally:
        await transaction.rollback()
        await blocker.close()

    # Second run: everything is read again and written exactly once.
    async with running_sink(config, "archive"):
        await eventually(lambda: _committed_is(kafka_config, len(events)))
    rows = await _ids(pg_database)
    assert sorted(rows) == sorted(item.id for item in events)


async def _waiting_on_lock(connection: asyncpg.Connection) -> bool:
    waiting = await connection.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return bool(waiting)


async def test_rows_carry_the_partition_and_offset_of_the_record_each_event_was_read_from(
    kafka_config: KafkaConfig, pg_database: str
) -> None:
    config = config_with({"archive": _archive(pg_database)}, kafka_config)
    batch = [event(number, key=f"member-{number % 3}") for number in range(12)]
    # The same id again later (a redelivery, a replay): the row keeps the first record's position.
    await publish(kafka_config, [*batch, batch[0]])

    async with running_sink(config, "archive"):
        await eventually(lambda: _rows_if(pg_database, len(batch)))
        await eventually(lambda: _committed_is(kafka_config, len(batch) + 1))

    records = await read_topic(kafka_config, kafka_config.events_topic, len(batch) + 1)
    first: dict[str, tuple[int, int]] = {}
    for record in sorted(records, key=lambda item: (item.partition, item.offset)):
        first.setdefault(header(record, "ce_id") or "", (record.partition, record.offset))
    connection = await asyncpg.connect(pg_database)
    try:
        rows = await connection.fetch("SELECT id, kafka_partition, kafka_offset FROM hookbus_events")
    finally:
        await connection.close()
    assert {row["id"]: (row["kafka_partition"], row["kafka_offset"]) for row in rows} == first


# --- an event the table sinks cannot encode -----------------------------------------------

DEEP_ID = "officernd-main:evt-deep"
DELIVERED_WITHIN_SECONDS = 15.0


def _deeply_nested_event(levels: int) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
    """An event on the events topic whose data is nested ``levels`` deep (its id is :data:`DEEP_ID`)."""
    key, _, headers = event(0, key="member-1").to_kafka(Mode.BINARY)
    headers = [(name, DEEP_ID.encode() if name == "ce_id" else value) for name, value in headers]
    return key, b'{"deep": ' + b"[" * levels + b"]" * levels + b"}", headers


async def _deep_event_among_good_ones(
    kafka: KafkaConfig, section: dict[str, Any], rows: Any
) -> tuple[set[str], list[Any], float]:
    """Run the sink over a deeply nested event followed by good events (on its partition and the
    others): the ids written, the dead letters, and how long the good events took."""
    config = config_with({"archive": section}, kafka)
    # The first shares the deep event's partition (its key); the others spread over the rest.
    good = [event(10, key="member-1"), *(event(number, key=f"member-{number}") for number in range(2, 10))]
    wanted = {item.id for item in good}
    async with running_sink(config, "archive"):
        started = time.monotonic()
        await publish(kafka, [_deeply_nested_event(300), *good])
        written = await eventually(lambda: _ids_if(rows, wanted), timeout=30)
        took = time.monotonic() - started
        assert await eventually(lambda: _committed_is(kafka, len(wanted) + 1))
    letters = await read_topic(kafka, f"{kafka.events_topic}.dlq.archive", 1, timeout=3)
    return written or set(), letters, took


async def _ids_if(rows: Any, wanted: set[str]) -> set[str] | None:
    ids = set(await rows())
    return ids if wanted <= ids else None


def _assert_written_or_dead_lettered(written: set[str], letters: list[Any], took: float) -> None:
    # Encoding it is another fix's business: either it is a row, or it is dead-lettered - never a stall.
    if DEEP_ID in written:
        assert letters == []
    else:
        [letter] = letters
        assert header(letter, "ce_id") == DEEP_ID
        assert (header(letter, "hookbus-dlq-stage"), header(letter, "hookbus-dlq-reason")) == ("write", "write_crashed")
    assert took < DELIVERED_WITHIN_SECONDS


_QUICK_RETRIES = {"retry_initial_seconds": 0.1, "retry_max_seconds": 1.0}


@pytest.mark.postgres
async def test_postgres_writes_or_dead_letters_an_event_nested_300_levels_and_goes_on(
    kafka_config: KafkaConfig, pg_database: str
) -> None:
    written, letters, took = await _deep_event_among_good_ones(
        kafka_config, _archive(pg_database, **_QUICK_RETRIES), lambda: _ids(pg_database)
    )

    _assert_written_or_dead_lettered(written, letters, took)


async def test_sqlite_writes_or_dead_letters_an_event_nested_300_levels_and_goes_on(
    kafka_config: KafkaConfig, tmp_path: Path
) -> None:
    database = tmp_path / "events.db"

    async def ids() -> list[str]:
        if not database.exists():
            return []
        with contextlib.closing(sqlite3.connect(database)) as connection:
            try:
                return [row[0] for row in connection.execute("SELECT id FROM hookbus_events")]
            except sqlite3.OperationalError:  # the sink has not created its table yet
                return []

    section = {"type": "sqlite", "path": str(database), "batch_size": 25, "batch_timeout_seconds": 0.2}
    written, letters, took = await _deep_event_among_good_ones(kafka_config, {**section, **_QUICK_RETRIES}, ids)

    _assert_written_or_dead_lettered(written, letters, took)


async def test_a_sink_told_not_to_report_deliveries_publishes_none(kafka_config: KafkaConfig, tmp_path: Path) -> None:
    database = tmp_path / "events.db"
    section = {"type": "sqlite", "path": str(database), "batch_timeout_seconds": 0.1, "report_deliveries": False}
    config = config_with({"quiet": section}, kafka_config)
    await publish(kafka_config, [event(1), event(2)])

    async with running_sink(config, "quiet"):
        assert await eventually(lambda: _committed(kafka_config, "hookbus-sink-quiet", 2))

    # Not even created: nothing was ever sent to it.
    admin = make_admin(kafka_config)
    await admin.start()
    try:
        assert kafka_config.deliveries_topic not in await admin.list_topics()
    finally:
        await admin.close()


async def _committed(kafka: KafkaConfig, group: str, total: int) -> bool:
    return await committed_offsets(kafka, group, kafka.events_topic) == total
