"""Stage 4: the sinks writing a preloaded events topic: PostgreSQL (against a raw asyncpg COPY
of the same rows), SQLite, and HTTP forward to a local receiver."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg

from bench import payloads
from bench.common import (
    VENV_PYTHON,
    BenchError,
    Measurement,
    Settings,
    StageResult,
    child,
    hookbus_command,
    new_port,
    postgres,
    watch_progress,
    write_config,
)
from bench.kafka_io import preload, watch_drain
from hookbus.config import HookbusConfig, load_config

TIMEOUT_SECONDS = 240.0
PG_TABLE = "hookbus_events"
COPY_TABLE = "bench_copy"
FORWARD_SECRET = "whsec_" + base64.b64encode(b"bench-forward-secret-32-bytes!!!").decode()


async def fresh_database(dsn: str) -> str:
    """A new empty database on the server of ``dsn``; its DSN."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    return dsn.rsplit("/", 1)[0] + f"/{name}"


def canonical_events(settings: Settings, bootstrap: str, workdir: Path, sinks: dict[str, object]) -> HookbusConfig:
    """A configuration whose events topic holds the normalized mix (made by the real normalizer)."""
    prefix = f"bench-sinks-{uuid.uuid4().hex[:8]}"
    config = load_config(
        write_config(workdir / "sinks.yaml", bootstrap, prefix, normalizer={"group_id": prefix}, sinks=sinks)
    )
    count = asyncio.run(preload(config, [request.raw_event() for request in payloads.mix(settings.drain_events)]))
    command = hookbus_command("--log-level", "warning", "normalizer", "--config", config.path)
    with child(command, log=workdir / "normalizer.log") as process:
        asyncio.run(watch_drain(config.kafka, [config.kafka.events_topic], count, process, timeout=TIMEOUT_SECONDS))
    return config


def time_sink(
    name: str, config: HookbusConfig, count: Callable[[], Awaitable[int]], expected: int, workdir: Path
) -> Measurement:
    command = hookbus_command("--log-level", "warning", "sink", name, "--config", config.path)
    with child(command, log=workdir / f"sink-{name}.log") as process:
        drained = asyncio.run(watch_progress(count, expected, process, timeout=TIMEOUT_SECONDS))
    return Measurement("sinks", f"{name}-sink", drained.rate, "rows/s", ok=expected)


async def pg_count(dsn: str, table: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        exists = await connection.fetchval("SELECT to_regclass($1)", table)
        return int(await connection.fetchval(f"SELECT count(*) FROM {table}")) if exists else 0  # noqa: S608
    finally:
        await connection.close()


async def raw_copy(dsn: str, batch_size: int) -> Measurement:
    """COPY the rows the sink wrote into an identical table, in the sink's batch size."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(f"SELECT * FROM {PG_TABLE} ORDER BY received_at")  # noqa: S608
        columns = [name for name in rows[0].keys() if name != "written_at"]  # noqa: SIM118 - a Record
        await connection.execute(f"CREATE TABLE {COPY_TABLE} (LIKE {PG_TABLE} INCLUDING ALL)")
        records = [tuple(row[name] for name in columns) for row in rows]
        started = time.monotonic()
        for offset in range(0, len(records), batch_size):
            await connection.copy_records_to_table(
                COPY_TABLE, records=records[offset : offset + batch_size], columns=columns
            )
        seconds = time.monotonic() - started
    finally:
        await connection.close()
    return Measurement(
        "sinks", "asyncpg-copy", len(records) / seconds, "rows/s", ok=len(records), note=f"batches of {batch_size}"
    )


def sqlite_counter(path: Path, table: str) -> Callable[[], Awaitable[int]]:
    def count_now() -> int:
        if not path.exists():
            return 0
        with sqlite3.connect(path, timeout=5) as connection:
            try:
                return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
            except sqlite3.OperationalError:
                return 0

    async def count() -> int:
        return await asyncio.to_thread(count_now)

    return count


def receiver_counter(port: int) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/count") as response:
            return int((await response.json())["count"])

    return count


def run(settings: Settings, bootstrap: str, workdir: Path) -> StageResult:
    result = StageResult("sinks")
    batch_size = 500
    expected = settings.drain_events
    receiver_port = new_port()
    sqlite_path = workdir / "bench.db"
    with postgres(workdir) as server_dsn:
        dsn = asyncio.run(fresh_database(server_dsn))
        group = f"bench-sinks-{uuid.uuid4().hex[:8]}"
        sinks: dict[str, object] = {
            "postgres": {"type": "postgres", "dsn": dsn, "group_id": f"{group}-pg", "batch_size": batch_size},
            "sqlite": {
                "type": "sqlite",
                "path": str(sqlite_path),
                "group_id": f"{group}-lite",
                "batch_size": batch_size,
            },
            "http": {
                "type": "http",
                "url": f"http://127.0.0.1:{receiver_port}/events",
                "secret": FORWARD_SECRET,
                "allow_private_destinations": True,
                "group_id": f"{group}-http",
                "batch_size": batch_size,
            },
        }
        config = canonical_events(settings, bootstrap, workdir, sinks)
        result.measurements.append(time_sink("postgres", config, lambda: pg_count(dsn, PG_TABLE), expected, workdir))
        result.measurements.append(asyncio.run(raw_copy(dsn, batch_size)))
    result.measurements.append(time_sink("sqlite", config, sqlite_counter(sqlite_path, PG_TABLE), expected, workdir))
    receiver = [str(VENV_PYTHON), "-m", "bench.receiver", "--port", str(receiver_port)]
    with child(receiver, log=workdir / "receiver.log", port=receiver_port):
        result.measurements.append(time_sink("http", config, receiver_counter(receiver_port), expected, workdir))
    if any(item.rate <= 0 for item in result.measurements):
        raise BenchError("a sink wrote nothing")
    result.notes.append(
        f"{expected} canonical events (the normalized mix) preloaded in the events topic; each sink timed from its"
        f" first row to the last (start-up and migrations excluded); batch size {batch_size}. PostgreSQL is a local"
        " cluster with fsync on. The raw COPY copies the rows the sink wrote into an identical table (indexes"
        " included) in the same batch size, with asyncpg's copy_records_to_table."
    )
    return result
