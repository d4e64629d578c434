"""On a three-node Kafka cluster, no event answered 2xx is lost and none is stored twice when a node fails.

The pipeline runs as real processes (gateway, normalizer, PostgreSQL sink) against a KRaft
cluster of three combined nodes from :mod:`tools.localkafka`, on topics replicated three times
with ``min.insync.replicas=2`` (set here with the admin client), so one node down still
acknowledges and two down refuses. A sender posts signed events at a fixed rate while a node
is killed and restarted; then every id is counted as in :mod:`tests.reliability.test_faults`,
and the 503s and the time until every source is answered 2xx again go into the report.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hookbus.config import KafkaConfig
from tests.reliability.guarantees import check
from tests.reliability.harness import (
    FULL_MODE,
    SOURCES,
    Delivery,
    Pipeline,
    Running,
    StreamSender,
    Tally,
    account,
    fresh_topics,
    pipeline_document,
    sink_dead_letter_topic,
    wait_drained,
)
from tests.reliability.report import Finding
from tests.support import free_port
from tools.localkafka import LocalKafkaCluster

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(600)]

RATE_PER_SECOND = 50.0
STREAM_SECONDS = float(os.environ.get("HOOKBUS_CLUSTER_STREAM_SECONDS", "20" if FULL_MODE else "6"))
"""How long events flow; ``HOOKBUS_CLUSTER_STREAM_SECONDS`` overrides the mode's default."""
EVENTS = int(RATE_PER_SECOND * STREAM_SECONDS)
FAULT_AT = EVENTS // 3
DRAIN_TIMEOUT_SECONDS = 240.0 if FULL_MODE else 120.0
DRAIN_SETTLE_SECONDS = 1.5
REPLICATION = 3
MIN_IN_SYNC_REPLICAS = 2
PARTITIONS = 3
# Down this long, the node's session (3 s in the launcher) expires and it is fenced before it returns.
NODE_OUTAGE_SECONDS = 4.0
NODE_RESTART_TIMEOUT_SECONDS = 120.0
# A gateway replica's restart after its kill: an orchestrator's delay, while the other replica answers.
GATEWAY_OUTAGE_SECONDS = 2.0
# Longer than the gateway's answer deadline (ack_timeout_seconds 1.5 in the scenario configuration)
# and than the node's session, so it is fenced while frozen.
FREEZE_SECONDS = 5.0

# The short form of this module stays under two minutes in CI; these scenarios add little there.
# A rolling restart takes three node restarts, far longer than the short stream, and a node
# restarted after the controller's kill does not always rejoin within the short form's bounds:
# both are run by scripts/reliability (full mode) only.
full_mode_only = pytest.mark.skipif(not FULL_MODE, reason="long: scripts/reliability runs it (full mode)")

NodeChooser = Callable[[LocalKafkaCluster, Pipeline], Awaitable[int]]


async def create_replicated_topics(kafka: KafkaConfig, names: Sequence[str]) -> None:
    """The scenario's topics, replicated on every node with ``min.insync.replicas`` set, before any stage
    starts (the stages leave existing topics as they are)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers, request_timeout_ms=30_000)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    name=name,
                    num_partitions=kafka.topic_partitions,
                    replication_factor=REPLICATION,
                    topic_configs={"min.insync.replicas": str(MIN_IN_SYNC_REPLICAS)},
                )
                for name in names
            ]
        )
    finally:
        await admin.close()


@pytest.fixture
async def cluster_pipeline(
    kafka_cluster: LocalKafkaCluster, pg_database: str, tmp_path: Path
) -> AsyncIterator[Pipeline]:
    """A pipeline on fresh, replicated topics of the cluster, writing into a database of its own."""
    kafka = dataclasses.replace(
        fresh_topics(kafka_cluster.bootstrap_servers, PARTITIONS), replication_factor=REPLICATION
    )
    await create_replicated_topics(
        kafka, [kafka.raw_topic, kafka.events_topic, kafka.dlq_topic, sink_dead_letter_topic(kafka)]
    )
    port = free_port()
    document = pipeline_document(
        kafka, port=port, dsn=pg_database, workdir=tmp_path, sources=[source.section() for source in SOURCES]
    )
    pipeline = Pipeline.write(tmp_path, kafka, port=port, dsn=pg_database, document=document)
    yield pipeline
    await asyncio.to_thread(pipeline.stop)


async def busiest_raw_partition(kafka: KafkaConfig) -> int:
    """The raw partition holding the most records so far: the one whose leader's loss stalls the most sources."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(kafka.raw_topic, partition) for partition in range(kafka.topic_partitions)]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return int(max(partitions, key=lambda partition: ends[partition]).partition)


async def raw_partition_leader(cluster: LocalKafkaCluster, pipeline: Pipeline) -> int:
    partition = await busiest_raw_partition(pipeline.kafka)
    return await asyncio.to_thread(cluster.partition_leader, pipeline.kafka.raw_topic, partition)


async def active_controller(cluster: LocalKafkaCluster, pipeline: Pipeline) -> int:
    return await asyncio.to_thread(cluster.active_controller)


def seconds_until_answered_normally(deliveries: Sequence[Delivery], since: float) -> float:
    """From ``since`` until the last event sent after it whose first answer was not a 2xx: after that,
    every source was answered 2xx at once again (0 when none was refused)."""
    refused_after = [
        delivery.sent_at - since
        for delivery in deliveries
        if delivery.sent_at >= since and not delivery.attempts[0].startswith("2")
    ]
    return round(max(refused_after, default=0.0), 2)


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterFault:
    """What a scenario that struck some nodes or processes measured."""

    struck: tuple[str, ...]
    recovery_seconds: float
    """From the fault until every source was answered 2xx at once again."""
    caught_up_seconds: float
    """From the stream's last answer until every event answered 2xx was a row: how long the consumers'
    lag took to go back to nothing."""
    spooled: int
    """2xx answered from a gateway's spool rather than after Kafka's acknowledgement."""
    tally: Tally

    def record(self, findings: list[Finding], name: str) -> None:
        check(
            findings,
            name,
            self.tally,
            struck=list(self.struck),
            answered_503=self.tally.refusals.get("503", 0),
            answered_from_spool=self.spooled,
            recovery_seconds=self.recovery_seconds,
            caught_up_seconds=self.caught_up_seconds,
        )
        # Whatever the fault, nothing but the documented 503 (or no answer in time) may be refused.
        assert set(self.tally.refusals) <= {"503", "connection_error"}, self.tally.refusals


Strike = Callable[[LocalKafkaCluster, Pipeline, Running], Awaitable[tuple[str, ...]]]
"""Injects a fault, waits until the cluster and the pipeline are whole again, and names what it struck."""


def node_name(node_id: int) -> str:
    return f"kafka-{node_id}"


async def wait_all_brokers(cluster: LocalKafkaCluster) -> None:
    await asyncio.to_thread(cluster.wait_brokers, set(cluster.node_ids), NODE_RESTART_TIMEOUT_SECONDS)


def killed_and_restarted(*choosers: NodeChooser) -> Strike:
    """SIGKILL the chosen nodes together, restart them after an outage."""

    async def strike(cluster: LocalKafkaCluster, pipeline: Pipeline, running: Running) -> tuple[str, ...]:
        victims = []
        for choose in choosers:
            victims.append(await choose(cluster, pipeline))
        assert len(set(victims) & set(cluster.node_ids)) == len(victims), victims
        for victim in victims:
            cluster.kill(victim)
        await asyncio.sleep(NODE_OUTAGE_SECONDS)
        for victim in victims:
            # Launched from this (the main) thread: a node dies with the thread that started it.
            cluster.restart(victim, wait=False)
        await wait_all_brokers(cluster)
        return tuple(map(node_name, victims))

    return strike


async def frozen_past_the_answer_deadline(
    cluster: LocalKafkaCluster, pipeline: Pipeline, running: Running
) -> tuple[str, ...]:
    """SIGSTOP the raw partition leader for longer than the gateway's answer deadline, then SIGCONT."""
    victim = await raw_partition_leader(cluster, pipeline)
    cluster.freeze(victim)
    await asyncio.sleep(FREEZE_SECONDS)
    cluster.thaw(victim)
    await wait_all_brokers(cluster)
    return (node_name(victim),)


async def rolling_restart(cluster: LocalKafkaCluster, pipeline: Pipeline, running: Running) -> tuple[str, ...]:
    """Each node in turn: SIGTERM (a controlled shutdown), started again, back as a broker before the next."""
    for node_id in cluster.node_ids:
        await asyncio.to_thread(cluster.terminate, node_id)
        cluster.restart(node_id, wait=False)
        await wait_all_brokers(cluster)
    return tuple(map(node_name, cluster.node_ids))


async def one_instance_of_each_stage_killed(
    cluster: LocalKafkaCluster, pipeline: Pipeline, running: Running
) -> tuple[str, ...]:
    """SIGKILL one gateway, one normalizer and one sink together. The gateway is started again, as its
    StatefulSet would (its replica owns its spool); the killed consumers are not, so their groups must hand
    their partitions to the survivors."""
    gateway, normalizer, sink = running.gateways[-1], running.normalizers[0], running.sinks[0]
    for process in (gateway, normalizer, sink):
        process.kill()
    await asyncio.sleep(GATEWAY_OUTAGE_SECONDS)
    await pipeline.restart_gateway(gateway, pipeline.base_urls[-1])
    return (gateway.name, normalizer.name, sink.name)


async def run_cluster_fault(
    cluster: LocalKafkaCluster,
    pipeline: Pipeline,
    strike: Strike,
    *,
    gateways: int = 1,
    normalizers: int = 1,
    sinks: int = 1,
) -> ClusterFault:
    """Stream events; once a third is answered, strike; then drain and count every id."""
    running = await pipeline.start(gateways=gateways, normalizers=normalizers, sinks=sinks)
    sender = StreamSender(pipeline.base_urls, SOURCES, count=EVENTS, rate=RATE_PER_SECOND)
    sending = asyncio.create_task(sender.run())
    try:
        await sender.wait_answered(FAULT_AT)
        struck_at = time.monotonic()
        struck = await strike(cluster, pipeline, running)
    finally:
        deliveries = await sending
    stream_ended_at = time.monotonic()
    accepted = sum(delivery.accepted for delivery in deliveries)
    await wait_drained(pipeline.dsn, accepted, timeout=DRAIN_TIMEOUT_SECONDS, settle=DRAIN_SETTLE_SECONDS)
    # The row count stopped changing ``settle`` seconds (and at most one poll) before the wait returned.
    caught_up_seconds = round(max(0.0, time.monotonic() - stream_ended_at - DRAIN_SETTLE_SECONDS), 2)
    tally = await account(pipeline, deliveries)
    return ClusterFault(
        struck,
        seconds_until_answered_normally(deliveries, struck_at),
        caught_up_seconds,
        pipeline.spooled_answers(),
        tally,
    )


async def another_node(cluster: LocalKafkaCluster, pipeline: Pipeline) -> int:
    """A node besides the raw partition leader: with both down, the quorum and the in-sync majority are lost."""
    leader = await raw_partition_leader(cluster, pipeline)
    return next(node_id for node_id in cluster.node_ids if node_id != leader)


async def test_raw_partition_leader_killed_and_restarted(
    kafka_cluster: LocalKafkaCluster, cluster_pipeline: Pipeline, findings: list[Finding]
) -> None:
    fault = await run_cluster_fault(kafka_cluster, cluster_pipeline, killed_and_restarted(raw_partition_leader))
    fault.record(findings, "cluster: raw partition leader SIGKILL mid-stream, restarted")


@full_mode_only
async def test_active_controller_killed_and_restarted(
    kafka_cluster: LocalKafkaCluster, cluster_pipeline: Pipeline, findings: list[Finding]
) -> None:
    fault = await run_cluster_fault(kafka_cluster, cluster_pipeline, killed_and_restarted(active_controller))
    fault.record(findings, "cluster: active controller SIGKILL mid-stream, restarted")


async def test_raw_partition_leader_frozen_past_the_answer_deadline(
    kafka_cluster: LocalKafkaCluster, cluster_pipeline: Pipeline, findings: list[Finding]
) -> None:
    fault = await run_cluster_fault(kafka_cluster, cluster_pipeline, frozen_past_the_answer_deadline)
    fault.record(findings, f"cluster: raw partition leader SIGSTOP for {FREEZE_SECONDS:g} s mid-stream")


async def test_quorum_lost_and_back(
    kafka_cluster: LocalKafkaCluster, cluster_pipeline: Pipeline, findings: list[Finding]
) -> None:
    strike = killed_and_restarted(raw_partition_leader, another_node)
    fault = await run_cluster_fault(kafka_cluster, cluster_pipeline, strike)
    fault.record(findings, "cluster: two of three nodes SIGKILL mid-stream (quorum lost), restarted")


@full_mode_only
async def test_rolling_restart(
    kafka_cluster: LocalKafkaCluster, cluster_pipeline: Pipeline, findings: list[Finding]
) -> None:
    fault = await run_cluster_fault(kafka_cluster, cluster_pipeline, rolling_restart)
    fault.record(findings, "cluster: rolling restart (SIGTERM, start, one node at a time) mid-stream")


async def test_one_gateway_normalizer_and_sink_of_several_killed(
    kafka_cluster: LocalKafkaCluster, cluster_pipeline: Pipeline, findings: list[Finding]
) -> None:
    fault = await run_cluster_fault(
        kafka_cluster, cluster_pipeline, one_instance_of_each_stage_killed, gateways=2, normalizers=3, sinks=2
    )
    fault.record(findings, "cluster: 2 gateways, 3 normalizers, 2 sinks; one of each SIGKILL mid-stream")
