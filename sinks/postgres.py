"""The PostgreSQL sink: one row per event id in a table it creates and migrates itself.

A batch is one ``INSERT ... SELECT ... FROM unnest($1::text[], ...) ON CONFLICT (id) DO
NOTHING``, one array per column, so a redelivered or replayed event writes nothing twice
(one statement and no temporary table: measured faster than COPY into a staging table and
an INSERT from there). When the database refuses the batch's data, the batch is written row
by row to find the events to dead-letter; when the database is unreachable, the whole batch
is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from asyncpg import connect_utils

from hookbus.cloudevent import CloudEvent
from hookbus.config import Secret
from hookbus.errors import ConfigError
from hookbus.settings import EXCLUSIVE_MINIMUM, MINIMUM, PARSE, as_secret
from hookbus.sink import BatchResult, EventRejectedError, SinkContext, SinkType, SinkUnavailableError
from hookbus.sink_tables import EventRow, as_identifier, write_rows
from sinks.migrations import MIGRATIONS_TABLE, POSTGRES

# Column and the type of its array parameter; the JSON ones are cast to jsonb as they are inserted.
_COLUMN_TYPES = (
    ("id", "text"),
    ("type", "text"),
    ("source", "text"),
    ("subject", "text"),
    ("time", "timestamptz"),
    ("received_at", "timestamptz"),
    ("provider", "text"),
    ("partition_key", "text"),
    ("data", "text"),
    ("event", "text"),
    ("kafka_partition", "integer"),
    ("kafka_offset", "bigint"),
)
_COLUMNS = tuple(column for column, _ in _COLUMN_TYPES)
_JSONB = frozenset({"data", "event"})
# Refused data, one event's fault (class 22: data exception, class 23: constraint violation).
_DATA_ERRORS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)
# Anything else the server or the driver says: the connection went away, or it will be fixed without the data changing.
_UNAVAILABLE = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)


def as_dsn(value: Any, key: str) -> Secret:
    """A connection string asyncpg can use: checked at startup as asyncpg reads it, since the
    pool would otherwise refuse it on every attempt to open (and the sink would retry forever)."""
    dsn = as_secret(value, key)
    text = dsn.value.decode("utf-8")
    try:
        addresses = _parse_dsn(text)
    except (ValueError, asyncpg.InterfaceError) as exc:
        raise ConfigError(f"does not parse as a PostgreSQL DSN: {_without(text, str(exc))}", key=key) from exc
    for _host, port in addresses:
        if isinstance(port, int) and not 0 < port < 65536:
            raise ConfigError("has a port outside 1-65535", key=key)
    return dsn


def _parse_dsn(dsn: str) -> list[tuple[str, int | str]]:
    # asyncpg's own reader (not public API, but the one create_pool uses): anything it
    # refuses here it would refuse at every connection attempt.
    parse: Any = connect_utils._parse_connect_arguments
    parsed = parse(
        dsn=dsn,
        host=None,
        port=None,
        user=None,
        password=None,
        passfile=None,
        database=None,
        command_timeout=None,
        statement_cache_size=100,
        max_cached_statement_lifetime=300,
        max_cacheable_statement_size=15 * 1024,
        ssl=None,
        direct_tls=None,
        server_settings=None,
        target_session_attrs=None,
        krbsrvname=None,
        gsslib=None,
        service=None,
        servicefile=None,
    )
    return list(parsed[0])


def _without(dsn: str, message: str) -> str:
    """The first line of ``message``, unless it quotes the DSN's password."""
    # Read by hand: the DSN may be too broken for urlsplit.
    password = dsn.partition("://")[2].rpartition("@")[0].partition(":")[2]
    if password and password in message:
        return "(the error quotes the password, so it is not shown)"
    return message.splitlines()[0] if message else ""


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    dsn: Secret = field(metadata={PARSE: as_dsn})
    """``postgresql://user:password@host:5432/db``; a secret because it usually holds the password."""
    table: str = field(default="hookbus_events", metadata={PARSE: as_identifier})
    pool_min_size: int = 1
    pool_max_size: int = field(default=4, metadata={MINIMUM: 1})
    connect_timeout_seconds: float = field(default=10.0, metadata={EXCLUSIVE_MINIMUM: 0})
    command_timeout_seconds: float = field(default=30.0, metadata={EXCLUSIVE_MINIMUM: 0})


class PostgresSink:
    def __init__(self, settings: PostgresSettings, context: SinkContext) -> None:
        self._settings = settings
        self._log = context.log.bind(table=settings.table)
        self._record_of = context.record_of
        self._pool: asyncpg.Pool | None = None
        table = settings.table
        columns = ", ".join(_COLUMNS)
        arrays = ", ".join(f"${number}::{kind}[]" for number, (_, kind) in enumerate(_COLUMN_TYPES, start=1))
        selected = ", ".join(f"{column}::jsonb" if column in _JSONB else column for column in _COLUMNS)
        values = ", ".join(
            f"${number}::jsonb" if column in _JSONB else f"${number}" for number, column in enumerate(_COLUMNS, start=1)
        )
        # ON CONFLICT DO NOTHING: the first record written for an id keeps its row (and its Kafka position).
        self._insert_many = f"""
            INSERT INTO {table} ({columns})
            SELECT {selected}
            FROM unnest({arrays}) AS batch ({columns})
            ON CONFLICT (id) DO NOTHING
        """  # noqa: S608 - the table name is checked to be a plain identifier
        self._insert_one = f"""
            INSERT INTO {table} ({columns})
            VALUES ({values})
            ON CONFLICT (id) DO NOTHING
        """  # noqa: S608 - the table name is checked to be a plain identifier

    async def open(self) -> None:
        settings = self._settings
        try:
            self._pool = await asyncpg.create_pool(
                settings.dsn.value.decode("utf-8"),
                min_size=min(settings.pool_min_size, settings.pool_max_size),
                max_size=max(1, settings.pool_max_size),
                timeout=settings.connect_timeout_seconds,
                command_timeout=settings.command_timeout_seconds,
            )
            async with self._pool.acquire() as connection:
                await self._migrate(connection)
        except _UNAVAILABLE as exc:
            await self.close()
            raise SinkUnavailableError(f"cannot reach PostgreSQL: {type(exc).__name__}: {exc}") from exc

    async def _migrate(self, connection: Any) -> None:
        table = self._settings.table
        async with connection.transaction():
            # Two sink processes starting together: the second waits here, then finds nothing to do.
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1))", MIGRATIONS_TABLE)
            await connection.execute(
                f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
                    table_name text NOT NULL,
                    version integer NOT NULL,
                    description text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (table_name, version)
                )"""
            )
            rows = await connection.fetch(f"SELECT version FROM {MIGRATIONS_TABLE} WHERE table_name = $1", table)  # noqa: S608
            applied = {row["version"] for row in rows}
            for migration in POSTGRES:
                if migration.version in applied:
                    continue
                for column, kind in migration.columns:
                    await connection.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
                for statement in migration.for_table(table):
                    await connection.execute(statement)
                await connection.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE} (table_name, version, description) VALUES ($1, $2, $3)",  # noqa: S608
                    table,
                    migration.version,
                    migration.description,
                )
                self._log.info("sink_migration_applied", version=migration.version)

    async def reachable(self) -> bool:
        """``SELECT 1`` on a connection of the pool, within the connect timeout."""
        try:
            async with asyncio.timeout(self._settings.connect_timeout_seconds), self._connection() as connection:
                await connection.fetchval("SELECT 1")
        except (*_UNAVAILABLE, SinkUnavailableError):
            return False
        return True

    async def write(self, batch: Sequence[CloudEvent]) -> BatchResult:
        return await write_rows(batch, self._write_bulk, self._write_row, self._log, self._record_of)

    async def _write_bulk(self, rows: Sequence[EventRow]) -> None:
        if not rows:
            return
        columns = [[getattr(row, column) for row in rows] for column in _COLUMNS]
        async with self._errors_classified(), self._connection() as connection:
            await connection.execute(self._insert_many, *columns)

    async def _write_row(self, row: EventRow) -> None:
        async with self._errors_classified(), self._connection() as connection:
            await connection.execute(self._insert_one, *_record(row))

    @contextlib.asynccontextmanager
    async def _connection(self) -> Any:
        if self._pool is None:
            raise SinkUnavailableError("the sink is not open")
        async with self._pool.acquire(timeout=self._settings.connect_timeout_seconds) as connection:
            yield connection

    @contextlib.asynccontextmanager
    async def _errors_classified(self) -> Any:
        try:
            yield
        except _DATA_ERRORS as exc:
            raise EventRejectedError(f"PostgreSQL refused the data: {exc}", reason="invalid_data") from exc
        except _UNAVAILABLE as exc:
            raise SinkUnavailableError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self._settings.command_timeout_seconds)
            except TimeoutError:
                pool.terminate()


def _record(row: EventRow) -> tuple[Any, ...]:
    return tuple(getattr(row, column) for column in _COLUMNS)


SINK = SinkType(
    name="postgres",
    settings=PostgresSettings,
    create=PostgresSink,
    description="One row per event id in a PostgreSQL table (asyncpg; INSERT ... FROM unnest ON CONFLICT DO NOTHING).",
)
