"""The versioned schema of the table sinks, one list per database.

A migration is applied once per events table and recorded in ``hookbus_schema_migrations``
(table name, version). ``{table}`` in a statement is the configured table name, already
checked to be a plain identifier. Append new versions; never edit an applied one.

A migration's ``columns`` are added first, each only when the table does not have it yet
(PostgreSQL's ``ADD COLUMN IF NOT EXISTS``; for SQLite, which has no such clause, the sink
looks the table up), then its statements run, in the transaction that records it.
Indexes are built under that transaction's lock, blocking writes to the table meanwhile: on
a large PostgreSQL table, build them first with ``CREATE INDEX CONCURRENTLY`` and the names
below, and the migration finds them there (``IF NOT EXISTS``).
"""

from __future__ import annotations

from dataclasses import dataclass

MIGRATIONS_TABLE = "hookbus_schema_migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]
    columns: tuple[tuple[str, str], ...] = ()
    """``(name, type)`` of the columns it adds, when missing."""

    def for_table(self, table: str) -> tuple[str, ...]:
        return tuple(statement.format(table=table) for statement in self.statements)


_INDEXES = (
    "CREATE INDEX IF NOT EXISTS {table}_type_idx ON {table} (type)",
    "CREATE INDEX IF NOT EXISTS {table}_source_idx ON {table} (source)",
    "CREATE INDEX IF NOT EXISTS {table}_time_idx ON {table} (time)",
    "CREATE INDEX IF NOT EXISTS {table}_subject_idx ON {table} (subject)",
)

# What consumers query: a subject's or a type's events over time, a partition key's events,
# and the events in Kafka order. The composite indexes cover the single-column ones of version 1.
_QUERY_INDEXES = (
    "CREATE INDEX IF NOT EXISTS {table}_subject_time_idx ON {table} (subject, time)",
    "CREATE INDEX IF NOT EXISTS {table}_type_time_idx ON {table} (type, time)",
    "CREATE INDEX IF NOT EXISTS {table}_partition_key_idx ON {table} (partition_key)",
    "CREATE INDEX IF NOT EXISTS {table}_kafka_position_idx ON {table} (kafka_partition, kafka_offset)",
    "DROP INDEX IF EXISTS {table}_type_idx",
    "DROP INDEX IF EXISTS {table}_subject_idx",
)
_POSITION = "Kafka partition and offset of each row, indexes for the queries consumers make"


def _sortable_sqlite_time(column: str) -> str:
    """Rewrite version 1's times (Python's ``+00:00`` form, and SQLite's milliseconds of
    ``written_at``) into the fixed-width ``...T00:00:00.000000Z`` form that sorts as text."""
    # The column names are the constants given below, never input.
    return (
        f"UPDATE {{table}} SET {column} = CASE"  # noqa: S608
        f" WHEN {column} LIKE '%+00:00' AND length({column}) = 25 THEN substr({column}, 1, 19) || '.000000Z'"
        f" WHEN {column} LIKE '%+00:00' AND length({column}) = 32 THEN substr({column}, 1, 26) || 'Z'"
        f" WHEN {column} LIKE '%Z' AND length({column}) = 24 THEN substr({column}, 1, 23) || '000Z'"
        f" ELSE {column} END"
    )


POSTGRES: tuple[Migration, ...] = (
    Migration(
        1,
        "events table",
        (
            """
            CREATE TABLE IF NOT EXISTS {table} (
                id text PRIMARY KEY,
                type text NOT NULL,
                source text NOT NULL,
                subject text,
                time timestamptz,
                received_at timestamptz,
                provider text,
                partition_key text,
                data jsonb,
                event jsonb NOT NULL,
                written_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            *_INDEXES,
        ),
    ),
    Migration(2, _POSITION, _QUERY_INDEXES, columns=(("kafka_partition", "integer"), ("kafka_offset", "bigint"))),
)

SQLITE: tuple[Migration, ...] = (
    Migration(
        1,
        "events table",
        (
            # Times are ISO 8601 in UTC, so they sort as text.
            """
            CREATE TABLE IF NOT EXISTS {table} (
                id TEXT PRIMARY KEY,
                type TEXT NOT NULL,
                source TEXT NOT NULL,
                subject TEXT,
                time TEXT,
                received_at TEXT,
                provider TEXT,
                partition_key TEXT,
                data TEXT,
                event TEXT NOT NULL,
                written_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
            )
            """,
            *_INDEXES,
        ),
    ),
    Migration(
        2,
        _POSITION + ", times in one fixed-width form",
        (*_QUERY_INDEXES, *(_sortable_sqlite_time(column) for column in ("time", "received_at", "written_at"))),
        columns=(("kafka_partition", "INTEGER"), ("kafka_offset", "INTEGER")),
    ),
)
