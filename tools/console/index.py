"""The console's index: an SQLite file per console instance, or one PostgreSQL database
shared by every instance.

It holds one row per request-log entry, event, dead letter and delivery report read, with
where each record is in Kafka, and the offset up to which each partition has been read,
written in the same transaction as the rows: after a restart the console resumes exactly
where its last transaction ended, with no row twice and none missing. Rows older than
``console.keep_days`` are pruned. docs/console.md argues the design.

The SQL is the same for both backends (:class:`IndexBackend` says what differs: placeholders,
a few column types, the writer's lease). Every method of :class:`IndexDatabase` runs on one
thread (the :class:`Index` runs them on its own), so the event loop never waits for the disk
or the database, and neither connection needs locking of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import orjson

from hookbus.requestlog import RequestLogEntry
from tools.console.records import NORMALIZER_STAGE, DeadLetterRow, DeliveryRow, EventRow, RequestRow, Row
from tools.errors import ConsoleError

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "MAX_PAGE",
    "DeadLetterQuery",
    "Index",
    "IndexBackend",
    "IndexDatabase",
    "IndexUnavailableError",
    "Page",
    "PostgresBackend",
    "RequestQuery",
    "SqliteBackend",
    "delivery_state",
]

SCHEMA_VERSION: Final = 1
MAX_PAGE: Final = 500
_T = TypeVar("_T")

# ``{real}`` and ``{blob}`` are the backend's types for a double and for bytes.
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    time {real} NOT NULL,
    source TEXT NOT NULL,
    provider TEXT,
    method TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT,
    status INTEGER NOT NULL,
    size INTEGER,
    ingest_id TEXT,
    entry {blob} NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_time ON requests (time DESC, id DESC);
CREATE INDEX IF NOT EXISTS requests_by_ingest_id ON requests (ingest_id);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    time {real} NOT NULL,
    ingest_id TEXT,
    source TEXT,
    type TEXT,
    subject TEXT,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_ingest_id ON events (ingest_id, time DESC);
CREATE INDEX IF NOT EXISTS events_by_subject ON events (subject);
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    time {real} NOT NULL,
    stage TEXT NOT NULL,
    sink TEXT,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    source TEXT,
    ingest_id TEXT,
    event_id TEXT,
    edited INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_time ON dead_letters (time DESC, id DESC);
CREATE INDEX IF NOT EXISTS dead_letters_by_ingest_id ON dead_letters (ingest_id);
CREATE INDEX IF NOT EXISTS dead_letters_by_event_id ON dead_letters (event_id);
CREATE TABLE IF NOT EXISTS deliveries (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    time {real} NOT NULL,
    sink TEXT NOT NULL,
    event_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    report {blob} NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS deliveries_by_event_id ON deliveries (event_id, time);
CREATE INDEX IF NOT EXISTS deliveries_by_time ON deliveries (time);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""

# The event a request became: the latest one published with its ingest id (a replay of a
# corrected body may map it to another id).
_REQUEST_COLUMNS: Final = """
    r.id, r.time, r.source, r.provider, r.method, r.verdict, r.reason, r.status, r.size, r.ingest_id,
    e.event_id, e.type, e.subject
FROM requests r
LEFT JOIN events e ON e.event_id = (
    SELECT event_id FROM events WHERE ingest_id = r.ingest_id ORDER BY time DESC LIMIT 1
)
"""
_DEAD_LETTER_COLUMNS: Final = (
    'id, topic, partition, "offset", time, stage, sink, reason, detail, source, ingest_id, event_id, edited'
)


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """The filters of ``GET /api/v1/requests``; ``None`` (or empty) filters nothing."""

    source: str | None = None
    provider: str | None = None
    verdict: str | None = None
    reason: str | None = None
    type: str | None = None
    status: int | None = None
    since: float | None = None
    until: float | None = None
    q: str | None = None
    """An exact ingest id, event id, request id or subject."""
    after: float | None = None
    before: str | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class DeadLetterQuery:
    stage: str | None = None
    reason: str | None = None
    source: str | None = None
    since: float | None = None
    until: float | None = None
    before: str | None = None
    limit: int = 50
    ids: tuple[str, ...] = ()
    """Exactly these dead letters (by ``<topic>:<partition>:<offset>``)."""


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]] = field(default_factory=list)
    next: str | None = None


def _cursor(time: float, item_id: str) -> str:
    return f"{time!r}:{item_id}"


def _page(rows: Sequence[Mapping[str, Any]], limit: int, item: Callable[[Mapping[str, Any]], dict[str, Any]]) -> Page:
    """A page of ``limit`` of ``rows`` (fetched one more, to tell whether a next page exists)."""
    last = rows[limit - 1] if len(rows) > limit else None
    return Page([item(row) for row in rows[:limit]], None if last is None else _cursor(last["time"], last["id"]))


def _after_cursor(cursor: str, clauses: list[str], parameters: list[Any], *, time: str, key: str) -> None:
    """Older than the item the cursor names, in (time, id) order, newest first."""
    moment, _, item_id = cursor.partition(":")
    clauses.append(f"({time} < ? OR ({time} = ? AND {key} < ?))")
    parameters.extend([float(moment), float(moment), item_id])


def delivery_state(
    verdict: str, event_id: str | None, normalizer_dead: bool, reports: Sequence[Mapping[str, Any]], sink_dead: set[str]
) -> str | None:
    """``RequestSummary.delivery``: what became of an accepted request, from the latest report of each sink.

    ``sink_dead``: sinks with a dead letter of the event (a sink that publishes no reports
    still dead-letters)."""
    if verdict != "accept":
        return None
    if event_id is None:
        return "dead_lettered" if normalizer_dead else None
    latest: dict[str, str] = {}
    for report in reports:
        latest[report["sink"]] = report["outcome"]
    for sink in sink_dead - latest.keys():
        latest[sink] = "dead_lettered"
    outcomes = set(latest.values())
    if "dead_lettered" in outcomes:
        return "dead_lettered"
    if "retry" in outcomes:
        return "retrying"
    return "written" if outcomes else "pending"


class IndexBackend(Protocol):
    """What differs between the index's databases; the SQL given is written with ``?`` placeholders."""

    real_type: str
    blob_type: str
    minute_of_time: str
    """An SQL expression of the minute ``time`` (Unix seconds) falls in, as Unix seconds."""

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        """Run one statement; a cursor with ``fetchall``, ``fetchone`` and ``rowcount``, whose rows are mappings."""
        ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Everything run inside it commits together, or not at all."""
        ...

    def take_writer_lease(self) -> bool:
        """Whether this instance may feed the index now (only one feeds a shared index at a time)."""
        ...

    def close(self) -> None: ...


class SqliteBackend:
    """One SQLite file, this console instance's own: it is always the writer."""

    real_type = "REAL"
    blob_type = "BLOB"
    minute_of_time = "CAST(time / 60 AS INTEGER) * 60.0"

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, parameters)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def take_writer_lease(self) -> bool:
        return True

    def close(self) -> None:
        self._db.close()


class IndexUnavailableError(ConsoleError):
    """The index's database cannot be reached; retriable: the next call connects again."""

    reason = "index_unavailable"
    retriable = True


def _lock_key(name: bytes) -> int:
    """A PostgreSQL advisory lock's key (a bigint) from a name no other application's locks are likely to hash to."""
    return int.from_bytes(hashlib.sha256(name).digest()[:8], "big", signed=True)


WRITER_LOCK: Final = _lock_key(b"hookbus console index: writer")
"""Held by the instance feeding a shared index, for as long as its connection lasts."""
_SCHEMA_LOCK: Final = _lock_key(b"hookbus console index: schema")


class PostgresBackend:
    """One PostgreSQL database shared by every console instance. The instance holding the
    :data:`WRITER_LOCK` advisory lock (a session lock: PostgreSQL frees it when that
    instance's connection ends) feeds the index; the others serve from it and wait to take
    over. A broken connection is opened again at the next call, without the lease."""

    real_type = "DOUBLE PRECISION"
    blob_type = "BYTEA"
    minute_of_time = "floor(time / 60) * 60.0"

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._db: psycopg.Connection[Any] | None = None
        self._leased = False
        self._connection()

    def _connection(self) -> psycopg.Connection[Any]:
        import psycopg
        from psycopg.rows import dict_row

        if self._db is not None and not self._db.closed and not self._db.broken:
            return self._db
        self._leased = False
        try:
            self._db = psycopg.connect(self._dsn, autocommit=True, row_factory=dict_row, connect_timeout=10)
        except psycopg.Error as exc:
            raise IndexUnavailableError(f"cannot connect to the index's database: {type(exc).__name__}") from exc
        return self._db

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        with self._unavailable_on_error():
            return self._connection().execute(_pyformat(sql), parameters)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._unavailable_on_error(), self._connection().cursor() as cursor:
            cursor.executemany(_pyformat(sql), rows)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self._unavailable_on_error(), self._connection().transaction():
            yield

    def take_writer_lease(self) -> bool:
        if not self._leased:
            row = self.execute("SELECT pg_try_advisory_lock(?) AS leased", (WRITER_LOCK,)).fetchone()
            self._leased = bool(row["leased"])
        return self._leased

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    @contextlib.contextmanager
    def _unavailable_on_error(self) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.OperationalError as exc:
            # The connection, not the statement: the server went away or refused us.
            raise IndexUnavailableError(f"the index's database failed: {type(exc).__name__}") from exc


def _pyformat(sql: str) -> str:
    """``sql`` with psycopg's placeholders (the index's SQL has no ``?`` or ``%`` of its own)."""
    return sql.replace("?", "%s")


def _upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """Insert a row, or replace the one with the same ``key``; the same SQL in SQLite and PostgreSQL."""
    updates = ", ".join(f"{column} = excluded.{column}" for column in columns if column not in key)
    placeholders = ", ".join("?" for _ in columns)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) "  # noqa: S608 - constant names
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


_REQUEST_UPSERT: Final = _upsert(
    "requests",
    ("id", "time", "source", "provider", "method", "verdict", "reason", "status", "size", "ingest_id", "entry"),
    ("id",),
)
_DELIVERY_UPSERT: Final = _upsert(
    "deliveries",
    ("topic", "partition", '"offset"', "time", "sink", "event_id", "outcome", "report"),
    ("topic", "partition", '"offset"'),
)
_EVENT_UPSERT: Final = _upsert(
    "events",
    ("event_id", "time", "ingest_id", "source", "type", "subject", "topic", "partition", '"offset"'),
    ("event_id",),
)
_DEAD_LETTER_UPSERT: Final = _upsert("dead_letters", tuple(_DEAD_LETTER_COLUMNS.split(", ")), ("id",))
_OFFSET_UPSERT: Final = _upsert("offsets", ("topic", "partition", "next_offset"), ("topic", "partition"))


class IndexDatabase:
    """The index in one backend; not thread-safe: used from one thread at a time (:class:`Index`)."""

    def __init__(self, backend: IndexBackend) -> None:
        self._db = backend
        for statement in _SCHEMA.format(real=backend.real_type, blob=backend.blob_type).split(";"):
            if statement.strip():
                backend.execute(statement)

    @classmethod
    def sqlite(cls, path: str) -> IndexDatabase:
        database = cls(SqliteBackend(path))
        database._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return database

    @classmethod
    def postgres(cls, dsn: str) -> IndexDatabase:
        backend = PostgresBackend(dsn)
        # Two instances starting at once would both create the tables: the lock makes one wait.
        with backend.transaction():
            backend.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            return cls(backend)

    def close(self) -> None:
        self._db.close()

    # --- writing ------------------------------------------------------------------------

    def take_writer_lease(self) -> bool:
        """Whether this instance feeds the index now; ask before each write."""
        return self._db.take_writer_lease()

    def stored_offsets(self) -> dict[tuple[str, int], int]:
        rows = self._db.execute("SELECT topic, partition, next_offset FROM offsets")
        return {(row["topic"], row["partition"]): row["next_offset"] for row in rows}

    def apply(self, rows: Iterable[Row], next_offsets: Mapping[tuple[str, int], int]) -> None:
        """Add ``rows`` and record ``next_offsets``, in one transaction."""
        values: dict[str, list[tuple[Any, ...]]] = {
            _REQUEST_UPSERT: [],
            _DELIVERY_UPSERT: [],
            _EVENT_UPSERT: [],
            _DEAD_LETTER_UPSERT: [],
        }
        for row in rows:
            statement, row_values = _values(row)
            values[statement].append(row_values)
        values[_OFFSET_UPSERT] = [(topic, partition, offset) for (topic, partition), offset in next_offsets.items()]
        with self._db.transaction():
            for statement, batch in values.items():
                if batch:
                    self._db.executemany(statement, batch)

    def prune(self, older_than: float) -> int:
        """Delete the rows from before ``older_than`` (Unix seconds); how many."""
        deleted = 0
        with self._db.transaction():
            for table in ("requests", "events", "dead_letters", "deliveries"):
                deleted += self._db.execute(f"DELETE FROM {table} WHERE time < ?", (older_than,)).rowcount  # noqa: S608
        return deleted

    # --- reading ------------------------------------------------------------------------

    def requests(self, query: RequestQuery) -> Page:
        clauses: list[str] = []
        parameters: list[Any] = []
        for column, value in (
            ("r.source", query.source),
            ("r.provider", query.provider),
            ("r.verdict", query.verdict),
            ("r.reason", query.reason),
            ("r.status", query.status),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                parameters.append(value)
        for clause, moment in (("r.time >= ?", query.since), ("r.time < ?", query.until), ("r.time > ?", query.after)):
            if moment is not None:
                clauses.append(clause)
                parameters.append(moment)
        if query.type is not None:
            clauses.append("EXISTS (SELECT 1 FROM events WHERE ingest_id = r.ingest_id AND type = ?)")
            parameters.append(query.type)
        if query.q is not None:
            clauses.append(
                "(r.id = ? OR r.ingest_id = ? OR EXISTS "
                "(SELECT 1 FROM events WHERE ingest_id = r.ingest_id AND (event_id = ? OR subject = ?)))"
            )
            parameters.extend([query.q] * 4)
        if query.before is not None:
            _after_cursor(query.before, clauses, parameters, time="r.time", key="r.id")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            f"SELECT {_REQUEST_COLUMNS} {where} ORDER BY r.time DESC, r.id DESC LIMIT ?",
            [*parameters, query.limit + 1],
        ).fetchall()
        return _page(rows, query.limit, self._summary)

    def _summary(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "id": row["id"],
            "time": row["time"],
            "source": row["source"],
            "provider": row["provider"],
            "method": row["method"],
            "verdict": row["verdict"],
            "reason": row["reason"],
            "status": row["status"],
            "size": row["size"],
            "ingest_id": row["ingest_id"],
            "event_id": row["event_id"],
            "event_type": row["type"],
            "subject": row["subject"],
            "delivery": self._delivery(row["verdict"], row["ingest_id"], row["event_id"]),
        }

    def _delivery(self, verdict: str, ingest_id: str | None, event_id: str | None) -> str | None:
        if verdict != "accept" or ingest_id is None:
            return None
        normalizer_dead = (
            self._db.execute(
                "SELECT 1 FROM dead_letters WHERE ingest_id = ? AND stage = ? LIMIT 1", (ingest_id, NORMALIZER_STAGE)
            ).fetchone()
            is not None
        )
        reports = self.deliveries(event_id) if event_id is not None else []
        sink_dead = {
            row["sink"]
            for row in self._db.execute(
                "SELECT DISTINCT sink FROM dead_letters WHERE event_id = ? AND sink IS NOT NULL", (event_id,)
            )
        }
        return delivery_state(verdict, event_id, normalizer_dead, reports, sink_dead)

    def request(self, request_id: str) -> tuple[RequestLogEntry, dict[str, Any]] | None:
        """One request's entry and its summary."""
        row = self._db.execute(f"SELECT {_REQUEST_COLUMNS} WHERE r.id = ?", (request_id,)).fetchone()
        if row is None:
            return None
        entry = self._db.execute("SELECT entry FROM requests WHERE id = ?", (request_id,)).fetchone()["entry"]
        return RequestLogEntry.from_json(entry), self._summary(row)

    def event_at(self, event_id: str) -> tuple[str, int, int] | None:
        row = self._db.execute(
            'SELECT topic, partition, "offset" FROM events WHERE event_id = ?', (event_id,)
        ).fetchone()
        return None if row is None else (row["topic"], row["partition"], row["offset"])

    def dead_letters_of(self, ingest_id: str | None, event_id: str | None) -> list[dict[str, Any]]:
        """The dead letters of one request: the normalizer's by ingest id, the sinks' by event id too."""
        rows = self._db.execute(
            f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters "  # noqa: S608
            "WHERE (ingest_id IS NOT NULL AND ingest_id = ?) OR (event_id IS NOT NULL AND event_id = ?) "
            "ORDER BY time, id",
            (ingest_id, event_id),
        )
        return [_dead_letter(row) for row in rows]

    def deliveries(self, event_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            'SELECT report FROM deliveries WHERE event_id = ? ORDER BY time, topic, partition, "offset"', (event_id,)
        )
        return [orjson.loads(row["report"]) for row in rows]

    def dead_letters(self, query: DeadLetterQuery) -> Page:
        where, parameters = _dead_letter_filter(query)
        rows = self._db.execute(
            f"SELECT {_DEAD_LETTER_COLUMNS} FROM dead_letters {where} ORDER BY time DESC, id DESC LIMIT ?",  # noqa: S608
            [*parameters, query.limit + 1],
        ).fetchall()
        return _page(rows, query.limit, _dead_letter)

    def requests_per_minute(self, since: float) -> list[dict[str, Any]]:
        rows = self._db.execute(
            f"SELECT {self._db.minute_of_time} AS minute, source, verdict, COUNT(*) AS count "  # noqa: S608
            "FROM requests WHERE time >= ? GROUP BY minute, source, verdict ORDER BY minute, source, verdict",
            (since,),
        )
        return [dict(row) for row in rows]

    def filter_values(self) -> dict[str, list[str]]:
        def distinct(sql: str) -> list[str]:
            return [row["value"] for row in self._db.execute(sql) if row["value"] is not None]

        return {
            "sources": distinct("SELECT DISTINCT source AS value FROM requests ORDER BY value"),
            "providers": distinct("SELECT DISTINCT provider AS value FROM requests ORDER BY value"),
            "verdicts": distinct("SELECT DISTINCT verdict AS value FROM requests ORDER BY value"),
            "reasons": distinct("SELECT DISTINCT reason AS value FROM requests ORDER BY value"),
            "types": distinct("SELECT DISTINCT type AS value FROM events ORDER BY value"),
        }


def _values(row: Row) -> tuple[str, tuple[Any, ...]]:
    """The statement that adds ``row``, and its values."""
    if isinstance(row, RequestRow):
        entry = row.entry
        return _REQUEST_UPSERT, (
            entry.id,
            entry.time,
            entry.source,
            entry.provider,
            entry.method,
            entry.verdict,
            entry.reason,
            entry.status,
            entry.size,
            entry.ingest_id,
            entry.to_json(),
        )
    if isinstance(row, DeliveryRow):
        report = row.report
        return _DELIVERY_UPSERT, (
            row.at.topic,
            row.at.partition,
            row.at.offset,
            report["time"],
            report["sink"],
            report["event_id"],
            report["outcome"],
            orjson.dumps(report),
        )
    if isinstance(row, EventRow):
        # A replayed event is published again under its id: the index points at the latest copy.
        return _EVENT_UPSERT, (
            row.event_id,
            row.time,
            row.ingest_id,
            row.source,
            row.type,
            row.subject,
            row.at.topic,
            row.at.partition,
            row.at.offset,
        )
    return _DEAD_LETTER_UPSERT, _dead_letter_values(row)


def _dead_letter_values(row: DeadLetterRow) -> tuple[Any, ...]:
    return (
        row.at.id,
        row.at.topic,
        row.at.partition,
        row.at.offset,
        row.time,
        row.stage,
        row.sink,
        row.reason,
        row.detail,
        row.source,
        row.ingest_id,
        row.event_id,
        int(row.edited),
    )


def _dead_letter_filter(query: DeadLetterQuery) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause of ``query`` and its parameters."""
    clauses: list[str] = []
    parameters: list[Any] = []
    for column, value in (("stage", query.stage), ("reason", query.reason), ("source", query.source)):
        if value is not None:
            clauses.append(f"{column} = ?")
            parameters.append(value)
    for clause, moment in (("time >= ?", query.since), ("time < ?", query.until)):
        if moment is not None:
            clauses.append(clause)
            parameters.append(moment)
    if query.ids:
        clauses.append(f"id IN ({', '.join('?' for _ in query.ids)})")
        parameters.extend(query.ids)
    if query.before is not None:
        _after_cursor(query.before, clauses, parameters, time="time", key="id")
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), parameters


def _dead_letter(row: Mapping[str, Any]) -> dict[str, Any]:
    """``DeadLetter`` of the API; a request's id is its ingest id (the request log names an accepted request so)."""
    return {
        "id": row["id"],
        "topic": row["topic"],
        "partition": row["partition"],
        "offset": row["offset"],
        "time": row["time"],
        "stage": row["stage"],
        "sink": row["sink"],
        "reason": row["reason"],
        "detail": row["detail"],
        "source": row["source"],
        "ingest_id": row["ingest_id"],
        "event_id": row["event_id"],
        "request_id": row["ingest_id"],
        "edited": bool(row["edited"]),
    }


class Index:
    """An :class:`IndexDatabase` used from the event loop: each call runs on the index's one thread."""

    def __init__(self, database: IndexDatabase, executor: ThreadPoolExecutor) -> None:
        self._database = database
        self._executor = executor

    @classmethod
    async def open(cls, connect: Callable[[], IndexDatabase]) -> Index:
        """The index ``connect`` opens (on the index's thread, like every later call)."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hookbus-console-index")
        try:
            database = await asyncio.get_running_loop().run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(database, executor)

    async def run(self, work: Callable[[IndexDatabase], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, self._database)

    async def close(self) -> None:
        await self.run(IndexDatabase.close)
        self._executor.shutdown(wait=True)
