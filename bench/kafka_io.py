"""Preloading topics and watching them fill, with hookbus's own Kafka settings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import Child, Drain, watch_progress
from hookbus.config import HookbusConfig, KafkaConfig
from hookbus.kafka import client_options, ensure_topics, hookbus_topics, make_producer, max_record_bytes
from hookbus.rawevent import RawEvent

PARTITIONS = 3


async def preload(config: HookbusConfig, events: Iterable[RawEvent]) -> int:
    """Write ``events`` to the raw topic (creating the topics first) as the gateway does, with
    hookbus's producer and its codec; how many were written."""
    await ensure_topics(config.kafka, hookbus_topics(config))
    producer = make_producer(config.kafka, max_request_size=max_record_bytes(config))
    await producer.start()
    try:
        pending = [
            await producer.send(config.kafka.raw_topic, event.body, key=event.kafka_key, headers=event.kafka_headers())
            for event in events
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(pending)


class OffsetWatcher:
    """Counts the records of some topics (their end offsets: nothing is deleted during a run)."""

    def __init__(self, kafka: KafkaConfig, topics: Sequence[str]) -> None:
        self._consumer = AIOKafkaConsumer(**client_options(kafka))
        self._partitions = [TopicPartition(topic, number) for topic in topics for number in range(PARTITIONS)]

    async def __aenter__(self) -> OffsetWatcher:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def count(self) -> int:
        ends = await self._consumer.end_offsets(self._partitions)
        return int(sum(ends.values()))


async def first_record_size(kafka: KafkaConfig, topic: str) -> int:
    """Bytes of the first record of ``topic`` that holds one (value plus headers)."""
    consumer = AIOKafkaConsumer(**client_options(kafka), auto_offset_reset="earliest", max_partition_fetch_bytes=2**24)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, number) for number in range(PARTITIONS)])
        batch = await consumer.getmany(timeout_ms=5000, max_records=1)
        for records in batch.values():
            for record in records:
                headers = sum(len(name) + len(value) for name, value in record.headers)
                return len(record.value or b"") + headers
        return 0
    finally:
        await consumer.stop()


async def watch_drain(
    kafka: KafkaConfig, topics: Sequence[str], expected: int, process: Child, *, timeout: float
) -> Drain:
    """Time ``process`` filling ``topics`` up to ``expected`` records."""
    async with OffsetWatcher(kafka, topics) as watcher:
        return await watch_progress(watcher.count, expected, process, timeout=timeout)


async def ingest_id_times(
    kafka: KafkaConfig, topic: str, *, header: str = "hookbus-ingest-id", since: float | None = None
) -> dict[str, float]:
    """The record timestamp (Unix seconds) of each ingest id (in ``header``) in ``topic`` now:
    read from the first record at or after ``since`` (from the beginning when ``None``) to the end offsets."""
    consumer = AIOKafkaConsumer(**client_options(kafka), auto_offset_reset="earliest", max_partition_fetch_bytes=2**24)
    partitions = [TopicPartition(topic, number) for number in range(PARTITIONS)]
    found: dict[str, float] = {}
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        starts = {partition: 0 for partition in partitions}
        if since is not None:
            at = await consumer.offsets_for_times({partition: int(since * 1000) for partition in partitions})
            # A partition with nothing written since then is read from its end: nothing.
            starts = {part: ends[part] if found_at is None else found_at.offset for part, found_at in at.items()}
        for partition, offset in starts.items():
            consumer.seek(partition, offset)
        remaining = {partition for partition in partitions if ends[partition] > starts[partition]}
        while remaining:
            for partition, records in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                for record in records:
                    ingest_id = dict(record.headers).get(header)
                    if ingest_id is not None:
                        found[ingest_id.decode()] = record.timestamp / 1000
                if records and records[-1].offset + 1 >= ends[partition]:
                    remaining.discard(partition)
    finally:
        await consumer.stop()
    return found
