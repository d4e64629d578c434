"""The local Kafka launcher runs a three-node cluster whose nodes can be killed, frozen and restarted one by one.

The cluster is the session's (``kafka_cluster`` in tests/conftest.py), shared with the cluster
fault tests; each test gets it with every node running.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tools.localkafka import LocalKafkaCluster, broker_view, main
from tools.localprocess import LOOPBACK

LEADER_MOVE_TIMEOUT_SECONDS = 30.0


async def _replicated_topic(cluster: LocalKafkaCluster) -> str:
    topic = f"cluster-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=3, topic_configs={"min.insync.replicas": "2"})]
        )
    finally:
        await admin.close()
    return topic


async def _read(cluster: LocalKafkaCluster, topic: str, expected: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=cluster.bootstrap_servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(values) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            values.extend(record.value or b"" for records in batches.values() for record in records)
        return values
    finally:
        await consumer.stop()


def _new_leader(cluster: LocalKafkaCluster, topic: str, old: int) -> int:
    deadline = time.monotonic() + LEADER_MOVE_TIMEOUT_SECONDS
    while (leader := cluster.partition_leader(topic)) in {old, -1} and time.monotonic() < deadline:
        time.sleep(0.2)
    return leader


def test_the_nodes_form_one_cluster_with_one_id_a_directory_each_and_a_quorum_of_all(
    kafka_cluster: LocalKafkaCluster,
) -> None:
    nodes = [kafka_cluster.node(node_id) for node_id in kafka_cluster.node_ids]
    cluster_ids = {
        line.removeprefix("cluster.id=")
        for node in nodes
        for line in (node.workdir / "data" / "meta.properties").read_text(encoding="utf-8").splitlines()
        if line.startswith("cluster.id=")
    }

    assert [broker_view(LOOPBACK, node.port).brokers for node in nodes] == [frozenset({1, 2, 3})] * 3
    assert cluster_ids == {kafka_cluster.layout.cluster_id}
    assert len({node.workdir for node in nodes}) == 3
    assert len({node.pid for node in nodes}) == 3
    assert kafka_cluster.active_controller() in kafka_cluster.node_ids


async def test_killing_a_partition_leader_moves_the_leadership_and_keeps_every_record(
    kafka_cluster: LocalKafkaCluster,
) -> None:
    topic = await _replicated_topic(kafka_cluster)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_cluster.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before the crash")
        leader = await asyncio.to_thread(kafka_cluster.partition_leader, topic)

        kafka_cluster.kill(leader)
        new_leader = await asyncio.to_thread(_new_leader, kafka_cluster, topic, leader)
        await producer.send_and_wait(topic, b"while a node is down")
        kafka_cluster.restart(leader, wait=False)
        await asyncio.to_thread(kafka_cluster.wait_brokers, {1, 2, 3}, 120.0)
    finally:
        await producer.stop()

    assert leader in kafka_cluster.node_ids
    assert new_leader in set(kafka_cluster.node_ids) - {leader}
    assert await _read(kafka_cluster, topic, expected=2) == [b"before the crash", b"while a node is down"]


def test_a_frozen_node_answers_nothing_and_the_others_answer_for_the_cluster(
    kafka_cluster: LocalKafkaCluster,
) -> None:
    frozen = kafka_cluster.node(3)
    kafka_cluster.freeze(3)
    try:
        assert broker_view(LOOPBACK, frozen.port, timeout=1.0).brokers == frozenset()
        assert 1 in kafka_cluster.view().brokers
    finally:
        kafka_cluster.thaw(3)

    assert 3 in broker_view(LOOPBACK, frozen.port, timeout=10.0).brokers


def test_the_command_line_refuses_one_port_for_a_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--nodes", "3", "--port", "9092"])

    assert exited.value.code == 2
    assert "--port is for one broker" in capsys.readouterr().err
