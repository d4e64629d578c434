"""Fixtures every test may use: a real Kafka broker, a real PostgreSQL, the shared vectors.

Services start lazily, the first time a test asks for them, and a service that cannot be
started fails the tests that need it with the reason: no test is ever skipped for want of
Kafka or PostgreSQL. Only the shared vectors, which live outside the repository, may be
missing on a developer's machine; then their tests skip with a reason (and fail in CI).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from hookbus.config import KafkaConfig
from tests.support import (
    VECTORS_ENV,
    choose_kafka,
    choose_postgres,
    in_ci,
    running_kafka,
    running_postgres,
    temporary_database,
    vectors_path,
)
from tools.localkafka import LocalKafkaCluster

_SERVICE_MARKERS = {
    "kafka_bootstrap": "kafka",
    "kafka_config": "kafka",
    "kafka_cluster": "kafka",
    "pg_dsn": "postgres",
    "pg_database": "postgres",
    "vectors_dir": "vectors",
}
_VECTOR_TESTS = pytest.StashKey[list[str]]()
_NAMES_IN_SUMMARY = 10


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [
        f"hookbus Kafka: {choose_kafka().describe()}",
        f"hookbus PostgreSQL: {choose_postgres().describe()}",
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by the services they use (``-m "not kafka"`` works) and note the vector tests."""
    vector_tests = []
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        for fixture, marker in _SERVICE_MARKERS.items():
            if fixture in fixtures:
                item.add_marker(marker)
        if "vectors_dir" in fixtures:
            vector_tests.append(item.nodeid)
    config.stash[_VECTOR_TESTS] = vector_tests


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    vector_tests = config.stash.get(_VECTOR_TESTS, [])
    path = vectors_path()
    if path.is_dir():
        terminalreporter.write_line(f"shared vectors: found at {path}; {len(vector_tests)} tests read them")
        return
    if not vector_tests:
        terminalreporter.write_line(f"shared vectors: not found at {path}; no selected test needs them")
        return
    names = ", ".join(vector_tests[:_NAMES_IN_SUMMARY])
    more = len(vector_tests) - _NAMES_IN_SUMMARY
    if more > 0:
        names += f" and {more} more"
    why = "which fails in CI" if in_ci() else f"set ${VECTORS_ENV} to run them"
    terminalreporter.write_line(
        f"shared vectors: NOT found at {path} ({why}); these {len(vector_tests)} tests did not run: {names}",
        yellow=True,
    )


@contextlib.contextmanager
def _or_fail(what: str) -> Iterator[None]:
    # A broken service must be seen, never hidden as a skip.
    try:
        yield
    except Exception as exc:
        pytest.fail(f"{what} could not be started for the tests: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` of a real Kafka broker."""
    with _or_fail("Kafka"), running_kafka(choose_kafka()) as bootstrap:
        yield bootstrap


@contextlib.asynccontextmanager
async def own_topics(kafka_bootstrap: str) -> AsyncIterator[KafkaConfig]:
    """A KafkaConfig on the test broker whose topic names belong to the block alone.

    The topics are not created (``hookbus.kafka.ensure_topics`` does that); whichever of them
    exist afterwards are deleted, so a shared broker does not fill up with test topics.
    """
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    config = KafkaConfig(
        bootstrap_servers=kafka_bootstrap,
        client_id=f"hookbus-{prefix}",
        raw_topic=f"{prefix}.raw",
        events_topic=f"{prefix}.events",
        dlq_topic=f"{prefix}.dlq",
        requests_topic=f"{prefix}.requests",
        deliveries_topic=f"{prefix}.deliveries",
        topic_partitions=3,
        replication_factor=1,
        # One broker: its topics cannot be safe, and the stages are told so.
        development_mode=True,
    )
    try:
        yield config
    finally:
        await _delete_topics_of(config)


@pytest.fixture
async def kafka_config(kafka_bootstrap: str) -> AsyncIterator[KafkaConfig]:
    """:func:`own_topics` for one test."""
    async with own_topics(kafka_bootstrap) as config:
        yield config


async def _delete_topics_of(config: KafkaConfig) -> None:
    # Cleanup only: a broker the test itself stopped must not turn a passing test into an error.
    admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap_servers, request_timeout_ms=10_000)
    with contextlib.suppress(KafkaError, OSError):
        await admin.start()
        try:
            prefix = config.raw_topic.removesuffix(".raw")
            existing = [topic for topic in await admin.list_topics() if topic.startswith(f"{prefix}.")]
            if existing:
                await admin.delete_topics(existing)
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def kafka_cluster_session() -> Iterator[LocalKafkaCluster]:
    """A three-node KRaft cluster (each node broker and controller), started once for the tests that ask."""
    with _or_fail("A Kafka cluster"):
        cluster = LocalKafkaCluster()
        cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kafka_cluster(kafka_cluster_session: LocalKafkaCluster) -> LocalKafkaCluster:
    """The session's cluster with every node running and answering (a test before may have killed
    or frozen one); tests kill, freeze and restart its nodes."""
    cluster = kafka_cluster_session
    for node_id in cluster.node_ids:
        node = cluster.node(node_id)
        cluster.thaw(node_id)
        if not node.running:
            cluster.restart(node_id, wait=False)
    cluster.wait_brokers(set(cluster.node_ids), timeout=120.0)
    return cluster


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a real PostgreSQL server, connecting as a superuser."""
    with _or_fail("PostgreSQL"), running_postgres(choose_postgres()) as dsn:
        yield dsn


@pytest.fixture
async def pg_database(pg_dsn: str) -> AsyncIterator[str]:
    """DSN of a new, empty database made for this test and dropped after it."""
    async with temporary_database(pg_dsn) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """The shared signed-request vectors folder (outside the repository)."""
    path = vectors_path()
    if path.is_dir():
        return path
    if in_ci():
        pytest.fail(f"shared vectors not found at {path}: CI must provide them (${VECTORS_ENV})", pytrace=False)
    pytest.skip(f"shared vectors not found at {path}: the project's own tests ran, the vector tests did not")
