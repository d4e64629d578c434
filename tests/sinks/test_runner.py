"""``hookbus sink`` end to end: the events topic into PostgreSQL through a real broker."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from hookbus.config import KafkaConfig
from sinks.runner import run_sink
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

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _archive(dsn: str, **runner: object) -> dict[str, object]:
    return {"type": "postgres", "dsn": dsn, "batch_size": 25, "batch_timeout_seconds": 0.2, **runner}


async def _ids(dsn: str) -> list[str]:
    connection = await asyncpg.connect(dsn)
    try:
        exists = await connection.fetchval("SELECT to_regclass('hookbus_events') IS NOT NULL")
        return [row["id"] for row in await connection.fetch("SELECT id FROM hookbus_events")] if exists else []
    finally:
        await connection.close()


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

    async with running_sink(config, "archive"):
        rows = await eventually(lambda: _rows_if(pg_database, len(wanted)))
        dlq = f"{kafka_config.events_topic}.dlq.archive"
        letters = await read_topic(kafka_config, dlq, 2)
        await eventually(lambda: _committed_is(kafka_config, total))

    assert sorted(rows) == sorted(item.id for item in wanted)
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
