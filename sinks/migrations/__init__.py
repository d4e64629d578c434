"""The versioned schema of the table sinks, one list per database.

A migration is applied once per events table and recorded in ``hookbus_schema_migrations``
(table name, version). ``{table}`` in a statement is the configured table name, already
checked to be a plain identifier. Append new versions; never edit an applied one.
"""

from __future__ import annotations

from dataclasses import dataclass

MIGRATIONS_TABLE = "hookbus_schema_migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]

    def for_table(self, table: str) -> tuple[str, ...]:
        return tuple(statement.format(table=table) for statement in self.statements)


_INDEXES = (
    "CREATE INDEX IF NOT EXISTS {table}_type_idx ON {table} (type)",
    "CREATE INDEX IF NOT EXISTS {table}_source_idx ON {table} (source)",
    "CREATE INDEX IF NOT EXISTS {table}_time_idx ON {table} (time)",
    "CREATE INDEX IF NOT EXISTS {table}_subject_idx ON {table} (subject)",
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
)
