"""Clients that lost every broker they knew find the cluster again through ``bootstrap_servers``."""

from __future__ import annotations

import asyncio
import dataclasses

from aiokafka import AIOKafkaProducer

from hookbus.config import KafkaConfig
from hookbus.kafka import TopicSpec, ensure_topics, make_consumer, make_producer
from hookbus.rebootstrap import RebootstrappingClient
from tools.localkafka import QUICK_START_JVM_OPTIONS, LocalKafka
from tools.localprocess import free_ports


async def test_producers_and_consumers_made_here_rebootstrap() -> None:
    # Never started: no broker is needed to see which client they were given.
    config = KafkaConfig(bootstrap_servers="127.0.0.1:9")
    assert isinstance(make_producer(config).client, RebootstrappingClient)
    assert isinstance(make_consumer(config, group_id="g")._client, RebootstrappingClient)


async def test_clients_whose_brokers_all_went_away_find_the_cluster_of_their_bootstrap_servers() -> None:
    # Broker "later" gets its port now but starts only once broker "first" is gone, so both
    # clients learn the cluster from "first" alone: the stale-broker case after a restart sequence.
    later_port, later_controller_port = free_ports(2)
    first = LocalKafka(jvm_options=QUICK_START_JVM_OPTIONS)
    later = LocalKafka(port=later_port, controller_port=later_controller_port, jvm_options=QUICK_START_JVM_OPTIONS)
    first.start()
    try:
        config = KafkaConfig(bootstrap_servers=f"{first.bootstrap_servers},127.0.0.1:{later_port}")
        topic = [TopicSpec(config.raw_topic, 1, 1)]
        await ensure_topics(dataclasses.replace(config, bootstrap_servers=first.bootstrap_servers), topic)
        producer = make_producer(config, request_timeout_ms=60_000)
        consumer = make_consumer(config, config.raw_topic, group_id="stale-broker")
        stock = AIOKafkaProducer(bootstrap_servers=config.bootstrap_servers)
        await producer.start()
        await consumer.start()
        await stock.start()
        try:
            first.stop()
            later.start()
            await ensure_topics(dataclasses.replace(config, bootstrap_servers=later.bootstrap_servers), topic)

            # aiokafka as it is asks only the broker it knew, and never recovers.
            assert await stock.client.force_metadata_update() is False
            metadata = await producer.send_and_wait(config.raw_topic, b"after the restart")
            assert (metadata.topic, metadata.offset) == (config.raw_topic, 0)
            assert [broker.port for broker in producer.client.cluster.brokers()] == [later_port]
            async with asyncio.timeout(60):
                record = await consumer.getone()
            assert (record.topic, record.value) == (config.raw_topic, b"after the restart")
        finally:
            await stock.stop()
            await consumer.stop()
            await producer.stop()
    finally:
        later.stop()
        first.stop()
