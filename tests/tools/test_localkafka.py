"""The local Kafka launcher runs a real broker that keeps its data across a kill and a restart.

These tests start their own brokers with LocalKafka, whatever $KAFKA_BOOTSTRAP_SERVERS says:
the launcher is what is under test.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from hookbus.config import KafkaConfig
from hookbus.kafka import TopicSpec, ensure_topics, make_producer
from tools.errors import LocalServiceError
from tools.localkafka import QUICK_START_JVM_OPTIONS, LocalKafka, broker_count


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalKafka]:
    with LocalKafka(jvm_options=QUICK_START_JVM_OPTIONS) as kafka:
        yield kafka


async def _new_topic(kafka: LocalKafka) -> tuple[KafkaConfig, str]:
    config = KafkaConfig(bootstrap_servers=kafka.bootstrap_servers, client_id="localkafka-test")
    topic = f"launcher-{uuid.uuid4().hex[:12]}"
    await ensure_topics(config, [TopicSpec(topic, partitions=3, replication_factor=1)])
    return config, topic


async def _read_all(bootstrap: str, topic: str, expected: int) -> list[bytes]:
    """The topic's records in partition order, once ``expected`` have arrived (or 20 s have passed)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        values: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + 20
        while len(values) < expected and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            values.extend(record.value for records in batches.values() for record in records)
        return values
    finally:
        await consumer.stop()


async def test_a_record_produced_with_acks_all_is_consumed(broker: LocalKafka) -> None:
    config, topic = await _new_topic(broker)
    producer = make_producer(config)
    await producer.start()
    try:
        metadata = await producer.send_and_wait(topic, b"first record", key=b"k")
    finally:
        await producer.stop()

    assert metadata.offset == 0
    assert await _read_all(broker.bootstrap_servers, topic, expected=1) == [b"first record"]


async def test_kill_and_restart_keep_the_address_the_topic_and_its_records(broker: LocalKafka) -> None:
    config, topic = await _new_topic(broker)
    address, first_pid = broker.bootstrap_servers, broker.pid
    producer = make_producer(config)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before the crash", partition=0)

        broker.kill()
        assert not broker.running
        assert broker_count("127.0.0.1", broker.port) == 0
        broker.restart()

        # The producer made before the crash reconnects to the same address by itself.
        await producer.send_and_wait(topic, b"after the restart", partition=0)
    finally:
        await producer.stop()

    assert broker.bootstrap_servers == address
    assert broker.pid not in (None, first_pid)
    assert await _read_all(broker.bootstrap_servers, topic, expected=2) == [b"before the crash", b"after the restart"]


def test_stop_ends_the_broker_and_removes_its_directory() -> None:
    kafka = LocalKafka(jvm_options=QUICK_START_JVM_OPTIONS)
    kafka.start()
    pid, workdir = kafka.pid, kafka.workdir
    assert pid is not None
    assert broker_count("127.0.0.1", kafka.port) == 1

    kafka.stop()

    assert kafka.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not workdir.exists()


async def test_a_working_directory_given_keeps_its_topics_from_one_broker_to_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Relative, as `hookbus dev` gives it (var/dev/kafka): the broker runs in that directory,
    # so the launcher must not hand it paths relative to ours.
    monkeypatch.chdir(tmp_path)
    with LocalKafka(workdir="var/kafka", jvm_options=QUICK_START_JVM_OPTIONS) as first:
        _, topic = await _new_topic(first)

    # A new broker in the same directory: other ports, the same cluster and data.
    with LocalKafka(workdir="var/kafka", jvm_options=QUICK_START_JVM_OPTIONS) as second:
        admin = AIOKafkaAdminClient(bootstrap_servers=second.bootstrap_servers)
        await admin.start()
        try:
            topics = await admin.list_topics()
        finally:
            await admin.close()

    assert topic in topics


def test_a_broker_that_cannot_start_raises_with_its_log() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        kafka = LocalKafka(port=taken.getsockname()[1], jvm_options=QUICK_START_JVM_OPTIONS)
        with pytest.raises(LocalServiceError, match="exited with code") as raised:
            kafka.start()

    assert raised.value.reason == "local_service_failed"
    assert "Address already in use" in str(raised.value)
    assert kafka.pid is None


def test_the_address_is_unknown_before_start() -> None:
    with pytest.raises(LocalServiceError, match="not been started"):
        _ = LocalKafka().bootstrap_servers
