"""The SQLite sink: the embedded default of ``hookbus dev``, same table and idempotency as PostgreSQL.

The standard library's ``sqlite3`` runs in a worker thread (``asyncio.to_thread``), one
statement sequence at a time, with the write-ahead log so readers never block the sink.
``INSERT OR IGNORE`` on the event id makes redeliveries and replays write nothing twice
(the first record written keeps the row and its Kafka position). Times are text in one
fixed-width form, ``2026-01-01T00:00:00.000000Z`` (:func:`hookbus.sink_tables.sortable_time`),
so they sort as time and compare with the events' own ``Z`` times.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from hookbus.cloudevent import CloudEvent
from hookbus.settings import EXCLUSIVE_MINIMUM, PARSE
from hookbus.sink import BatchResult, EventRejectedError, SinkContext, SinkType, SinkUnavailableError
from hookbus.sink_tables import EventRow, as_identifier, sortable_time, write_rows
from sinks.migrations import MIGRATIONS_TABLE, SQLITE

_COLUMNS = (
    "id",
    "type",
    "source",
    "subject",
    "time",
    "received_at",
    "provider",
    "partition_key",
    "data",
    "event",
    "kafka_partition",
    "kafka_offset",
    "written_at",
)
_T = TypeVar("_T")
# How often switching to WAL is tried again while another connection holds the database.
_WAL_RETRY_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class SqliteSettings:
    path: str = "./var/hookbus.db"
    table: str = field(default="hookbus_events", metadata={PARSE: as_identifier})
    busy_timeout_seconds: float = field(default=5.0, metadata={EXCLUSIVE_MINIMUM: 0})


class SqliteSink:
    def __init__(self, settings: SqliteSettings, context: SinkContext) -> None:
        self._settings = settings
        self._log = context.log.bind(table=settings.table)
        self._record_of = context.record_of
        self._connection: sqlite3.Connection | None = None
        # One thread at a time touches the connection.
        self._lock = asyncio.Lock()
        placeholders = ", ".join("?" for _ in _COLUMNS)
        self._insert = f"INSERT OR IGNORE INTO {settings.table} ({', '.join(_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608

    async def open(self) -> None:
        self._connection = await self._run(self._connect)

    def _connect(self) -> sqlite3.Connection:
        path = Path(self._settings.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Transactions are explicit (isolation_level=None), so a batch is one BEGIN ... COMMIT.
        connection = sqlite3.connect(
            path, timeout=self._settings.busy_timeout_seconds, isolation_level=None, check_same_thread=False
        )
        try:
            self._use_wal(connection)
            connection.execute("PRAGMA synchronous=FULL")
            self._migrate(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _use_wal(self, connection: sqlite3.Connection) -> None:
        # Switching to WAL needs the database to itself and, unlike other statements, gives
        # up at once ("database is locked") when another connection holds it, such as a
        # second instance migrating the same file: it is tried again until the busy timeout.
        deadline = time.monotonic() + self._settings.busy_timeout_seconds
        while True:
            try:
                connection.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(_WAL_RETRY_SECONDS)
            else:
                return

    def _migrate(self, connection: sqlite3.Connection) -> None:
        table = self._settings.table
        # BEGIN IMMEDIATE takes the write lock: a second process opening at once waits, then finds nothing to do.
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(
                f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
                    table_name TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    description TEXT NOT NULL,
                    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
                    PRIMARY KEY (table_name, version)
                )"""
            )
            rows = connection.execute(f"SELECT version FROM {MIGRATIONS_TABLE} WHERE table_name = ?", (table,))  # noqa: S608
            applied = {version for (version,) in rows}
            for migration in SQLITE:
                if migration.version in applied:
                    continue
                present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
                for column, kind in migration.columns:
                    if column not in present:
                        connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                for statement in migration.for_table(table):
                    connection.execute(statement)
                connection.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (table_name, version, description) VALUES (?, ?, ?)",  # noqa: S608
                    (table, migration.version, migration.description),
                )
                self._log.info("sink_migration_applied", version=migration.version)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    async def write(self, batch: Sequence[CloudEvent]) -> BatchResult:
        return await write_rows(batch, self._write_bulk, self._write_row, self._log, self._record_of)

    async def _write_bulk(self, rows: Sequence[EventRow]) -> None:
        if rows:
            await self._run(self._insert_in_transaction, rows)

    async def _write_row(self, row: EventRow) -> None:
        await self._run(self._insert_in_transaction, [row])

    def _insert_in_transaction(self, rows: Sequence[EventRow]) -> None:
        connection = self._connection
        if connection is None:
            raise SinkUnavailableError("the sink is not open")
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Set here rather than by the column's default, which only has milliseconds.
            written_at = sortable_time(datetime.now(UTC))
            connection.executemany(self._insert, [_record(row, written_at) for row in rows])
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    async def _run(self, work: Callable[..., _T], *args: Any) -> _T:
        async with self._lock:
            try:
                return await asyncio.to_thread(work, *args)
            except (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError) as exc:
                raise EventRejectedError(f"SQLite refused the data: {exc}", reason="invalid_data") from exc
            except (sqlite3.Error, OSError) as exc:
                # Locked, busy, disk full, I/O error: the same batch may go through later.
                raise SinkUnavailableError(f"SQLite: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            async with self._lock:
                await asyncio.to_thread(connection.close)


def _record(row: EventRow, written_at: str) -> tuple[Any, ...]:
    return (
        row.id,
        row.type,
        row.source,
        row.subject,
        sortable_time(row.time) if row.time is not None else None,
        sortable_time(row.received_at) if row.received_at is not None else None,
        row.provider,
        row.partition_key,
        row.data,
        row.event,
        row.kafka_partition,
        row.kafka_offset,
        written_at,
    )


SINK = SinkType(
    name="sqlite",
    settings=SqliteSettings,
    create=SqliteSink,
    description="One row per event id in a local SQLite file (WAL mode); the default of `hookbus dev`.",
)
