"""The console's index: one SQLite file per console instance.

It holds one row per request-log entry, event, dead letter and delivery report read, with
where each record is in Kafka, and the offset up to which each partition has been read,
written in the same transaction as the rows: after a restart the console resumes exactly
where its last transaction ended, with no row twice and none missing. Rows older than
``console.keep_days`` are pruned. docs/console.md argues the design.

Every method of :class:`IndexDatabase` runs on one thread (the :class:`Index` runs them on
its own), so the event loop never waits for the disk and SQLite needs no locking of ours.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson

from hookbus.requestlog import RequestLogEntry
from tools.console.records import NORMALIZER_STAGE, DeadLetterRow, DeliveryRow, EventRow, RequestRow, Row

__all__ = [
    "MAX_PAGE",
    "DeadLetterQuery",
    "Index",
    "IndexDatabase",
    "Page",
    "RequestQuery",
    "delivery_state",
]

SCHEMA_VERSION: Final = 1
MAX_PAGE: Final = 500
_T = TypeVar("_T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    time REAL NOT NULL,
    source TEXT NOT NULL,
    provider TEXT,
    method TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT,
    status INTEGER NOT NULL,
    size INTEGER,
    ingest_id TEXT,
    entry BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_time ON requests (time DESC, id DESC);
CREATE INDEX IF NOT EXISTS requests_by_ingest_id ON requests (ingest_id);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    time REAL NOT NULL,
    ingest_id TEXT,
    source TEXT,
    type TEXT,
    subject TEXT,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_ingest_id ON events (ingest_id, time DESC);
CREATE INDEX IF NOT EXISTS events_by_subject ON events (subject);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    time REAL NOT NULL,
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
    "offset" INTEGER NOT NULL,
    time REAL NOT NULL,
    sink TEXT NOT NULL,
    event_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    report BLOB NOT NULL,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS deliveries_by_event_id ON deliveries (event_id, time);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
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


def _page(rows: Sequence[sqlite3.Row], limit: int, item: Callable[[sqlite3.Row], dict[str, Any]]) -> Page:
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


class IndexDatabase:
    """The SQLite file; not thread-safe: used from one thread at a time (:class:`Index`)."""

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    # --- writing ------------------------------------------------------------------------

    def stored_offsets(self) -> dict[tuple[str, int], int]:
        rows = self._db.execute("SELECT topic, partition, next_offset FROM offsets")
        return {(row["topic"], row["partition"]): row["next_offset"] for row in rows}

    def apply(self, rows: Iterable[Row], next_offsets: Mapping[tuple[str, int], int]) -> None:
        """Add ``rows`` and record ``next_offsets``, in one transaction."""
        with self._transaction():
            for row in rows:
                self._add(row)
            self._db.executemany(
                "INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?) "
                "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                [(topic, partition, offset) for (topic, partition), offset in next_offsets.items()],
            )

    def _add(self, row: Row) -> None:
        if isinstance(row, RequestRow):
            entry = row.entry
            self._db.execute(
                "INSERT OR REPLACE INTO requests "
                "(id, time, source, provider, method, verdict, reason, status, size, ingest_id, entry) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
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
                ),
            )
        elif isinstance(row, DeliveryRow):
            report = row.report
            self._db.execute(
                'INSERT OR REPLACE INTO deliveries (topic, partition, "offset", time, sink, event_id, outcome, report) '
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.at.topic,
                    row.at.partition,
                    row.at.offset,
                    report["time"],
                    report["sink"],
                    report["event_id"],
                    report["outcome"],
                    orjson.dumps(report),
                ),
            )
        elif isinstance(row, EventRow):
            # A replayed event is published again under its id: the index points at the latest copy.
            self._db.execute(
                "INSERT OR REPLACE INTO events "
                '(event_id, time, ingest_id, source, type, subject, topic, partition, "offset") '
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.event_id,
                    row.time,
                    row.ingest_id,
                    row.source,
                    row.type,
                    row.subject,
                    row.at.topic,
                    row.at.partition,
                    row.at.offset,
                ),
            )
        else:
            self._add_dead_letter(row)

    def _add_dead_letter(self, row: DeadLetterRow) -> None:
        self._db.execute(
            f"INSERT OR REPLACE INTO dead_letters ({_DEAD_LETTER_COLUMNS}) "  # noqa: S608 - constant columns
            f"VALUES ({', '.join('?' * 13)})",
            (
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
            ),
        )

    def prune(self, older_than: float) -> int:
        """Delete the rows from before ``older_than`` (Unix seconds); how many."""
        deleted = 0
        with self._transaction():
            for table in ("requests", "events", "dead_letters", "deliveries"):
                deleted += self._db.execute(f"DELETE FROM {table} WHERE time < ?", (older_than,)).rowcount  # noqa: S608
        return deleted

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

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

    def _summary(self, row: sqlite3.Row) -> dict[str, Any]:
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
            "SELECT CAST(time / 60 AS INTEGER) * 60.0 AS minute, source, verdict, COUNT(*) AS count "
            "FROM requests WHERE time >= ? GROUP BY minute, source, verdict ORDER BY minute, source, verdict",
            (since,),
        )
        return [dict(row) for row in rows]

    def filter_values(self) -> dict[str, list[str]]:
        def distinct(sql: str) -> list[str]:
            return [row[0] for row in self._db.execute(sql) if row[0] is not None]

        return {
            "sources": distinct("SELECT DISTINCT source FROM requests ORDER BY source"),
            "providers": distinct("SELECT DISTINCT provider FROM requests ORDER BY provider"),
            "verdicts": distinct("SELECT DISTINCT verdict FROM requests ORDER BY verdict"),
            "reasons": distinct("SELECT DISTINCT reason FROM requests ORDER BY reason"),
            "types": distinct("SELECT DISTINCT type FROM events ORDER BY type"),
        }


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


def _dead_letter(row: sqlite3.Row) -> dict[str, Any]:
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


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


class Index:
    """An :class:`IndexDatabase` used from the event loop: each call runs on the index's one thread."""

    def __init__(self, database: IndexDatabase, executor: ThreadPoolExecutor) -> None:
        self._database = database
        self._executor = executor

    @classmethod
    async def open(cls, path: str) -> Index:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hookbus-console-index")
        database = await asyncio.get_running_loop().run_in_executor(executor, IndexDatabase, path)
        return cls(database, executor)

    async def run(self, work: Callable[[IndexDatabase], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, self._database)

    async def close(self) -> None:
        await self.run(IndexDatabase.close)
        self._executor.shutdown(wait=True)
