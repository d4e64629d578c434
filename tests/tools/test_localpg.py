"""The local PostgreSQL launcher runs a real server that keeps committed data across restarts and kills.

These tests start their own cluster with LocalPostgres, whatever $HOOKBUS_TEST_PG_DSN says: the
launcher is what is under test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from tools.errors import LocalServiceError
from tools.localpg import SUPERUSER, LocalPostgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    with LocalPostgres() as server:
        yield server


async def _fetch(dsn: str, query: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(query))
    finally:
        await connection.close()


async def _commit_a_row(dsn: str) -> str:
    """Commit one row with a value of its own into ``kept`` and return the value."""
    value = uuid.uuid4().hex
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE TABLE IF NOT EXISTS kept (value text)")
        await connection.execute("INSERT INTO kept VALUES ($1)", value)
    finally:
        await connection.close()
    return value


async def _kept_values(dsn: str) -> list[str]:
    return [row["value"] for row in await _fetch(dsn, "SELECT value FROM kept")]


async def test_a_query_runs_as_the_hookbus_superuser(postgres: LocalPostgres) -> None:
    rows = await _fetch(postgres.dsn, "SELECT current_user AS name, current_setting('is_superuser') AS superuser")

    assert [(row["name"], row["superuser"]) for row in rows] == [(SUPERUSER, "on")]


async def test_restart_keeps_the_data_and_the_address(postgres: LocalPostgres) -> None:
    value = await _commit_a_row(postgres.dsn)
    dsn, first_pid = postgres.dsn, postgres.pid

    postgres.restart()

    assert postgres.dsn == dsn
    assert postgres.pid not in (None, first_pid)
    assert value in await _kept_values(postgres.dsn)


async def test_a_killed_server_comes_back_with_every_committed_transaction(postgres: LocalPostgres) -> None:
    value = await _commit_a_row(postgres.dsn)
    open_session = await asyncpg.connect(postgres.dsn)

    postgres.kill()
    assert not postgres.running
    postgres.restart()

    # The kill took the session's backend with the server: nothing of the old server is left.
    assert not await _is_alive(open_session)
    assert value in await _kept_values(postgres.dsn)


async def _is_alive(connection: asyncpg.Connection) -> bool:
    try:
        await connection.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    finally:
        connection.terminate()
    return True


def test_stop_ends_the_server_and_removes_its_directory() -> None:
    server = LocalPostgres()
    server.start()
    pid, workdir = server.pid, server.workdir
    assert pid is not None

    server.stop()

    assert server.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not workdir.exists()


def test_the_dsn_is_unknown_before_start() -> None:
    with pytest.raises(LocalServiceError, match="not been started"):
        _ = LocalPostgres().dsn
