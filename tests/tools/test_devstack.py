"""``hookbus dev``: the state it keeps, how it supervises its services, and the real thing
run as a process: a sent event becomes one row in SQLite, and SIGTERM ends it with 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import yaml

from hookbus.cloudevent import CloudEvent
from hookbus.config import KafkaConfig
from hookbus.provider import provider, providers
from tests.support import REPO_ROOT, free_port
from tools.devstack import (
    CONSOLE_TOKEN_VARIABLE,
    SECRETS_FILE,
    DevState,
    _hookbus_command,
    credential_variable,
    dev_config_document,
    supervise,
)
from tools.localkafka import broker_count

LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 120.0
ROW_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 60.0
_POLL_SECONDS = 0.1


# --- the state directory ------------------------------------------------------------------


def test_state_generates_every_credential_of_the_example_config_once(tmp_path: Path) -> None:
    template = yaml.safe_dump(dev_config_document())
    referenced = set(re.findall(r"\$\{(HOOKBUS_DEV_\w+_(?:SECRET|API_KEY))\}", template))
    # One credential for each placeholder of each installed provider's example source, and the console's token.
    wanted = {
        credential_variable(name, kind)
        for name, item in providers().items()
        for kind in ("SECRET", "API_KEY")
        if f"${{{kind}}}" in orjson.dumps(item.examples.source).decode()
    } | {CONSOLE_TOKEN_VARIABLE}

    first = DevState.prepare(tmp_path, template)
    again = DevState.prepare(tmp_path, template)

    assert set(first.values) == referenced == wanted
    assert again.values == first.values
    assert len(set(first.values.values())) == len(referenced)
    assert stat.S_IMODE(os.stat(tmp_path / SECRETS_FILE).st_mode) == 0o600
    assert first.secret("october") == first.values["HOOKBUS_DEV_OCTOBER_SECRET"]
    assert first.api_key("octamile") == first.values["HOOKBUS_DEV_OCTAMILE_API_KEY"]
    assert first.secret("octamile") is None


def test_state_keeps_stored_secrets_and_adds_only_new_ones(tmp_path: Path) -> None:
    DevState.prepare(tmp_path, "secrets: [${HOOKBUS_DEV_A_SECRET}]")
    kept = DevState.read(tmp_path).values["HOOKBUS_DEV_A_SECRET"]

    state = DevState.prepare(tmp_path, "a: ${HOOKBUS_DEV_A_SECRET}\nb: ${HOOKBUS_DEV_B_API_KEY}")

    assert state.values["HOOKBUS_DEV_A_SECRET"] == kept
    assert state.api_key("b")
    assert DevState.read(tmp_path).values == state.values


# --- supervising the services -------------------------------------------------------------


async def _serves(stop: asyncio.Event, ready: asyncio.Event) -> None:
    ready.set()
    await stop.wait()


async def _fails_at_start(stop: asyncio.Event, ready: asyncio.Event) -> None:
    raise RuntimeError("cannot listen")


async def _returns_at_once(stop: asyncio.Event, ready: asyncio.Event) -> None:
    ready.set()


async def _ignores_stop(stop: asyncio.Event, ready: asyncio.Event) -> None:
    ready.set()
    await asyncio.Event().wait()


async def test_supervise_announces_readiness_and_stops_all_when_asked() -> None:
    stop = asyncio.Event()
    announced: list[bool] = []

    def on_ready() -> None:
        announced.append(True)
        stop.set()

    failures = await asyncio.wait_for(
        supervise({"a": _serves, "b": _serves}, stop, on_ready=on_ready), STOP_TIMEOUT_SECONDS
    )

    assert announced == [True]
    assert failures == {}


async def test_a_failing_service_stops_the_others_and_is_reported() -> None:
    stop = asyncio.Event()
    announced: list[bool] = []

    failures = await asyncio.wait_for(
        supervise({"gateway": _fails_at_start, "sink": _serves}, stop, on_ready=lambda: announced.append(True)),
        STOP_TIMEOUT_SECONDS,
    )

    assert failures == {"gateway": "RuntimeError: cannot listen"}
    assert stop.is_set()
    assert announced == []


async def test_a_service_ending_unasked_is_a_failure() -> None:
    failures = await asyncio.wait_for(
        supervise({"normalizer": _returns_at_once, "sink": _serves}, asyncio.Event()), STOP_TIMEOUT_SECONDS
    )

    assert failures == {"normalizer": "ended before it was asked to stop"}


async def test_a_service_that_does_not_stop_is_cancelled_after_the_grace_period() -> None:
    stop = asyncio.Event()
    stop.set()

    failures = await asyncio.wait_for(
        supervise({"stuck": _ignores_stop, "fine": _serves}, stop, grace_seconds=0.2), STOP_TIMEOUT_SECONDS
    )

    assert failures == {"stuck": "did not stop within 0.2 s and was cancelled"}


# --- the real thing, as a process ---------------------------------------------------------


@dataclass
class DevProcess:
    """``hookbus dev`` running as a child process, its output in files."""

    process: asyncio.subprocess.Process
    stdout: Path
    stderr: Path
    state_dir: Path
    port: int
    console_port: int
    started_at: float
    environment: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def output(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace")

    def errors_tail(self) -> str:
        lines = self.stderr.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-20:])

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while "hookbus dev is running" not in self.output() or "Try it" not in self.output():
            if self.process.returncode is not None:
                pytest.fail(f"hookbus dev exited with {self.process.returncode}:\n{self.errors_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"hookbus dev was not ready within {START_TIMEOUT_SECONDS:.0f} s:\n{self.errors_tail()}")
            await asyncio.sleep(_POLL_SECONDS)

    async def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_SECONDS)


async def _start_dev(tmp_path: Path, arguments: tuple[str, ...], port: int | None) -> DevProcess:
    state_dir = tmp_path / "state"
    port = port or free_port()
    console_port = free_port()
    # Where `hookbus dev` records itself for `hookbus send`: this test's, not the user's.
    environment = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "user-state")}
    stdout, stderr = tmp_path / "dev.out", tmp_path / "dev.err"
    started_at = time.monotonic()
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hookbus",
            "dev",
            "--state-dir",
            str(state_dir),
            "--port",
            str(port),
            "--console-port",
            str(console_port),
            *arguments,
            stdout=out,
            stderr=err,
            cwd=REPO_ROOT,
            env=environment,
        )
    return DevProcess(process, stdout, stderr, state_dir, port, console_port, started_at, environment)


@contextlib.asynccontextmanager
async def running_dev(tmp_path: Path, *arguments: str, port: int | None = None) -> AsyncIterator[DevProcess]:
    dev = await _start_dev(tmp_path, arguments, port)
    try:
        yield dev
    finally:
        if dev.process.returncode is None:
            dev.process.kill()
            await dev.process.wait()


async def _hookbus(dev: DevProcess, *arguments: str) -> tuple[int, str, str]:
    """Another hookbus command, started from a directory outside the checkout as a user would."""
    elsewhere = dev.stdout.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hookbus",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=elsewhere,
        env=dev.environment,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _send(dev: DevProcess, provider: str) -> str:
    """``hookbus send`` with no option, from elsewhere: it finds the stack that ``hookbus dev``
    recorded (URL and state); the ingest id."""
    code, out, err = await _hookbus(dev, "send", provider)
    assert code == 0, err
    match = re.fullmatch(r"\S+ 200 id=(\S+)\n", out)
    assert match, out
    return match.group(1)


Rows = list[dict[str, Any]]
RowReader = Callable[[], Awaitable[Rows]]


def _read_sqlite(database: Path) -> Rows:
    if not database.exists():
        return []
    connection = sqlite3.connect(database)
    connection.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in connection.execute("SELECT * FROM hookbus_events")]
    except sqlite3.OperationalError:  # the sink has not created its table yet
        return []
    finally:
        connection.close()


def sqlite_rows(database: Path) -> RowReader:
    return lambda: asyncio.to_thread(_read_sqlite, database)


def postgres_rows(dsn: str) -> RowReader:
    async def read() -> Rows:
        connection = await asyncpg.connect(dsn)
        try:
            return [dict(row) for row in await connection.fetch("SELECT * FROM hookbus_events")]
        except asyncpg.UndefinedTableError:  # the sink has not created its table yet
            return []
        finally:
            await connection.close()

    return read


async def _first_rows(read: RowReader) -> Rows:
    deadline = time.monotonic() + ROW_TIMEOUT_SECONDS
    while not (rows := await read()):
        if time.monotonic() > deadline:
            pytest.fail(f"no row within {ROW_TIMEOUT_SECONDS:.0f} s")
        await asyncio.sleep(_POLL_SECONDS)
    return rows


def _report(capsys: pytest.CaptureFixture[str], what: str, seconds: float) -> None:
    with capsys.disabled():
        print(f"\n[hookbus dev] {what}: {seconds:.1f} s")


async def _sent_october_event_becomes_one_row(
    dev: DevProcess, capsys: pytest.CaptureFixture[str], read: RowReader | None = None
) -> None:
    await dev.wait_ready()
    assert f"hookbus send october --url {dev.url} --state-dir {dev.state_dir}" in dev.output()
    config_file = dev.state_dir / "config.yaml"
    assert f"Config    {config_file}" in dev.output()

    sent_at = time.monotonic()
    ingest_id = await _send(dev, "october")
    rows = await _first_rows(read or sqlite_rows(dev.state_dir / "hookbus.db"))
    seen_at = time.monotonic()
    _report(capsys, "start to first row", seen_at - dev.started_at)
    _report(capsys, "send to row", seen_at - sent_at)

    assert len(rows) == 1
    row = rows[0]
    event = CloudEvent.from_dict(orjson.loads(row["event"]))
    assert (row["id"], row["type"], row["source"], row["provider"]) == (
        event.id,
        provider("october").mapper.known_types["update_request"],
        "/webhooks/october",
        "october",
    )
    assert row["id"].startswith("october:")
    assert row["subject"] == event.subject
    assert event.subject
    assert event.extensions["ingestid"] == ingest_id
    assert event.extensions["authmethod"] == "signature"
    assert orjson.loads(row["data"]) == event.data

    await _console_shows(dev, ingest_id, event.id)

    # The file it runs serves every other command as it is, from anywhere.
    assert stat.S_IMODE(os.stat(config_file).st_mode) == 0o600
    code, _, err = await _hookbus(dev, "replay", "--config", str(config_file), "--dry-run")
    assert code == 0, err
    # One line per request at info: the gateway's; the sink's per batch is at debug.
    assert "sink_batch_done" not in dev.stderr.read_text(encoding="utf-8")


async def _console_shows(dev: DevProcess, ingest_id: str, event_id: str) -> None:
    """The console the banner names, with the token it prints, lists the request and its event."""
    token = DevState.read(dev.state_dir).values[CONSOLE_TOKEN_VARIABLE]
    console = f"http://{LOOPBACK}:{dev.console_port}/"
    assert f"Console   {console} (token {token})" in dev.output()
    deadline = time.monotonic() + ROW_TIMEOUT_SECONDS
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        while True:
            async with session.get(f"{console}api/v1/requests", params={"q": ingest_id}) as response:
                assert response.status == 200
                items = (await response.json())["items"]
            if items and items[0]["event_id"] is not None:
                break
            assert time.monotonic() < deadline, "the console did not show the request"
            await asyncio.sleep(_POLL_SECONDS)
    assert (items[0]["id"], items[0]["verdict"], items[0]["event_id"]) == (ingest_id, "accept", event_id)


async def test_dev_on_an_existing_broker_turns_a_sent_event_into_a_row(
    tmp_path: Path, kafka_config: KafkaConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = kafka_config.raw_topic.removesuffix(".raw")
    async with running_dev(tmp_path, "--bootstrap", kafka_config.bootstrap_servers, "--topic-prefix", prefix) as dev:
        await _sent_october_event_becomes_one_row(dev, capsys)

        assert await dev.terminate() == 0


async def test_dev_with_pg_writes_to_postgresql_instead(
    tmp_path: Path, kafka_config: KafkaConfig, pg_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = kafka_config.raw_topic.removesuffix(".raw")
    async with running_dev(
        tmp_path, "--bootstrap", kafka_config.bootstrap_servers, "--topic-prefix", prefix, "--pg", pg_database
    ) as dev:
        await _sent_october_event_becomes_one_row(dev, capsys, postgres_rows(pg_database))

        assert await dev.terminate() == 0
    assert "Events    PostgreSQL" in dev.output()
    assert not (dev.state_dir / "hookbus.db").exists()


async def test_dev_exits_non_zero_with_the_error_when_a_service_fails(
    tmp_path: Path, kafka_config: KafkaConfig
) -> None:
    prefix = kafka_config.raw_topic.removesuffix(".raw")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with running_dev(
            tmp_path, "--bootstrap", kafka_config.bootstrap_servers, "--topic-prefix", prefix, port=port
        ) as dev:
            code = await asyncio.wait_for(dev.process.wait(), START_TIMEOUT_SECONDS)

    assert code == 1
    errors = dev.stderr.read_text(encoding="utf-8")
    assert re.search(r"^hookbus dev: gateway failed: .*cannot listen", errors, flags=re.MULTILINE), errors
    assert "hookbus dev is running" not in dev.output()


async def test_dev_starts_its_own_broker_and_stops_it_last(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with running_dev(tmp_path) as dev:
        await _sent_october_event_becomes_one_row(dev, capsys)
        broker = re.search(r"Kafka\s+127\.0\.0\.1:(\d+) \(local broker", dev.output())
        assert broker, dev.output()
        broker_port = int(broker.group(1))
        assert broker_count(LOOPBACK, broker_port) == 1

        assert await dev.terminate() == 0

    assert broker_count(LOOPBACK, broker_port) == 0
    assert (dev.state_dir / "kafka").is_dir()
    # A brand-new broker sets up its group coordinator while the consumers start: waited
    # for, not logged as errors (aiokafka's "GroupCoordinatorNotAvailable", "Marking the
    # coordinator dead").
    errors = dev.stderr.read_text(encoding="utf-8")
    assert "oordinator" not in errors, errors
    assert '"level":"error"' not in errors, errors


def test_the_banners_send_line_names_a_relatively_started_hookbus_by_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # scripts/run starts `.venv/bin/hookbus` from the checkout; the banner's line is run elsewhere.
    script = tmp_path / ".venv" / "bin" / "hookbus"
    script.parent.mkdir(parents=True)
    script.touch()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [".venv/bin/hookbus", "dev"])
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))

    assert _hookbus_command() == str(script)
