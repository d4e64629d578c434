"""Helpers shared by the tests: free ports, and where the real Kafka and PostgreSQL come from.

The services are chosen in this order: an address in the environment (a shared broker, CI's
service containers), then testcontainers when a Docker daemon answers and either holds the
service's image already or ``$HOOKBUS_TEST_DOCKER=1`` says it may pull it, then a real Apache
Kafka broker / PostgreSQL cluster started on this machine by :mod:`tools.localkafka` and
:mod:`tools.localpg`. (A daemon alone is not enough: on a machine that reaches no registry,
every test would fail pulling an image.) Whatever is chosen is real: nothing here imitates Kafka or PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hookbus.provider import providers
from tools.localkafka import KAFKA_VERSION, QUICK_START_JVM_OPTIONS, LocalKafka
from tools.localpg import LocalPostgres
from tools.localprocess import free_port

__all__ = [
    "DOCKER_ENV",
    "KAFKA_ENV",
    "PG_ENV",
    "VECTORS_ENV",
    "ServiceChoice",
    "Source",
    "choose_kafka",
    "choose_postgres",
    "database_dsn",
    "free_port",
    "in_ci",
    "running_kafka",
    "running_postgres",
    "vector_files",
    "vectors_path",
]

KAFKA_ENV = "KAFKA_BOOTSTRAP_SERVERS"
DOCKER_ENV = "HOOKBUS_TEST_DOCKER"
PG_ENV = "HOOKBUS_TEST_PG_DSN"
VECTORS_ENV = "HOOKBUS_VECTORS_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent
# Confluent Platform 8.1 is Apache Kafka 4.1, the version the local launcher runs.
KAFKA_IMAGE = "confluentinc/cp-kafka:8.1.0"
POSTGRES_IMAGE = "postgres:16-alpine"
BROKER_MESSAGE_MAX_BYTES = str(16 * 1024 * 1024)


class Source(Enum):
    ENV = "env"
    DOCKER = "docker"
    LOCAL = "local"


@dataclass(frozen=True, slots=True)
class ServiceChoice:
    """Where a service comes from, and a description for the report header (never a password)."""

    source: Source
    detail: str
    address: str | None = None

    def describe(self) -> str:
        return f"{self.source.value} ({self.detail})"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1"}


def vectors_path() -> Path:
    """Where the shared signed-request vectors are expected: ``$HOOKBUS_VECTORS_DIR`` or ``../shared/vectors``."""
    explicit = os.environ.get(VECTORS_ENV)
    return Path(explicit) if explicit else REPO_ROOT.parent / "shared" / "vectors"


def vector_files(folder: Path) -> list[Path]:
    """Every vector file of ``folder`` an installed provider can judge: one per provider, and
    those of ``next/`` (providers still being built) once their provider is installed. A
    ``next/`` file of a provider that does not exist yet cannot be loaded, so it waits there."""
    upcoming = [path for path in sorted((folder / "next").glob("*.json")) if path.stem in providers()]
    return [*sorted(folder.glob("*.json")), *upcoming]


@functools.cache
def docker_has(image: str) -> bool:
    """Whether a Docker daemon answers right now and may run ``image``: it holds it, or
    ``$HOOKBUS_TEST_DOCKER=1`` allows a pull (quickly false when there is no daemon)."""
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=3)
        try:
            if not client.ping():
                return False
            if os.environ.get(DOCKER_ENV) == "1":
                return True
            client.images.get(image)
            return True
        finally:
            client.close()
    except Exception:  # no daemon, or no such image: the next choice is tried
        return False


def _safe_address(dsn: str) -> str:
    """``host:port/database`` of a DSN, so the header never prints its password."""
    parts = urlsplit(dsn)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


@functools.cache
def choose_kafka() -> ServiceChoice:
    bootstrap = os.environ.get(KAFKA_ENV)
    if bootstrap:
        return ServiceChoice(Source.ENV, f"${KAFKA_ENV}={bootstrap}", bootstrap)
    if docker_has(KAFKA_IMAGE):
        return ServiceChoice(Source.DOCKER, f"testcontainers {KAFKA_IMAGE}, started on first use")
    return ServiceChoice(Source.LOCAL, f"Apache Kafka {KAFKA_VERSION} from Maven Central jars, started on first use")


@functools.cache
def choose_postgres() -> ServiceChoice:
    dsn = os.environ.get(PG_ENV)
    if dsn:
        return ServiceChoice(Source.ENV, f"${PG_ENV} -> {_safe_address(dsn)}", dsn)
    if docker_has(POSTGRES_IMAGE):
        return ServiceChoice(Source.DOCKER, f"testcontainers {POSTGRES_IMAGE}, started on first use")
    return ServiceChoice(Source.LOCAL, "a throwaway cluster of this machine's PostgreSQL, started on first use")


@contextlib.contextmanager
def running_kafka(choice: ServiceChoice) -> Iterator[str]:
    """The bootstrap address of a running broker for ``choice``, stopped afterwards if started here."""
    if choice.address is not None:
        yield choice.address
    elif choice.source is Source.DOCKER:
        from testcontainers.community.kafka import KafkaContainer

        container = (
            KafkaContainer(KAFKA_IMAGE)
            .with_kraft()
            .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
            .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
            .with_env("KAFKA_MESSAGE_MAX_BYTES", BROKER_MESSAGE_MAX_BYTES)
            .with_env("KAFKA_REPLICA_FETCH_MAX_BYTES", BROKER_MESSAGE_MAX_BYTES)
        )
        with container:
            yield str(container.get_bootstrap_server())
    else:
        with LocalKafka(jvm_options=QUICK_START_JVM_OPTIONS) as kafka:
            yield kafka.bootstrap_servers


@contextlib.contextmanager
def running_postgres(choice: ServiceChoice) -> Iterator[str]:
    """The DSN of a running PostgreSQL for ``choice``, stopped afterwards if started here."""
    if choice.address is not None:
        yield choice.address
    elif choice.source is Source.DOCKER:
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, driver=None) as container:
            yield str(container.get_connection_url())
    else:
        with LocalPostgres() as postgres:
            yield postgres.dsn


def database_dsn(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database on the same server, with the same credentials."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@contextlib.asynccontextmanager
async def temporary_database(dsn: str, *, prefix: str = "hookbus_test") -> AsyncIterator[str]:
    """A new, empty database on the server of ``dsn``: its DSN while the block runs, dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield database_dsn(dsn, name)
    finally:
        admin = await asyncpg.connect(dsn)
        try:
            # FORCE ends sessions a test left open (a pool not closed after a failure).
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def running_service(
    start: Callable[[asyncio.Event, asyncio.Event], Awaitable[None]], what: str, *, timeout: float = 60.0
) -> AsyncIterator[asyncio.Task[None]]:
    """``start(stop, ready)`` as a task, once it set ``ready``; stopped (SIGTERM-style) when the block ends.

    Fails the test when it neither gets ready nor fails within ``timeout``; a failure to start is raised.
    """
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(start(stop, ready))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        task.result()
    assert ready.is_set(), f"{what} did not start within {timeout:g} s"
    try:
        yield task
    finally:
        stop.set()
        if not task.done():
            await asyncio.wait_for(task, timeout)
