"""What the sink tests share: events, a configuration around a test's Kafka topics, topic I/O."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from hookbus.cloudevent import CloudEvent, Mode
from hookbus.config import HookbusConfig, KafkaConfig, parse_config
from hookbus.kafka import client_options, ensure_topics, hookbus_topics, make_producer, max_record_bytes
from hookbus.sink import SinkContext
from sinks.runner import run_sink
from tests.support import running_service


def event(
    number: int,
    *,
    type: str = "officernd.member.created",
    source: str = "hookbus/officernd-main",
    key: str | None = None,
    data: Any = None,
    time: str | None = "2024-05-01T10:00:00Z",
) -> CloudEvent:
    extensions: dict[str, str | int | bool] = {"provider": "officernd", "receivedtime": "2024-05-01T10:00:01.5Z"}
    if key is not None:
        extensions["partitionkey"] = key
    return CloudEvent(
        id=f"officernd-main:evt-{number}",
        source=source,
        type=type,
        subject=f"member/{number}",
        time=time,
        data=data if data is not None else {"number": number, "name": f"member {number}"},
        extensions=extensions,
    )


def config_with(sinks: Mapping[str, Mapping[str, Any]], kafka: KafkaConfig | None = None) -> HookbusConfig:
    config = parse_config({"sinks": {name: dict(section) for name, section in sinks.items()}}, path="test.yaml")
    return dataclasses.replace(config, kafka=kafka) if kafka is not None else config


def context(config: HookbusConfig | None = None, name: str = "test") -> SinkContext:
    config = config or config_with({})
    return SinkContext(
        name=name,
        log=structlog.get_logger().bind(sink=name),
        kafka=config.kafka,
        max_record_bytes=max_record_bytes(config),
    )


async def publish(
    kafka: KafkaConfig, records: Sequence[CloudEvent | tuple[bytes | None, bytes, list[tuple[str, bytes]]]]
) -> None:
    """Write events (binary mode) or raw ``(key, value, headers)`` records to the events topic."""
    await ensure_topics(
        kafka, [spec for spec in hookbus_topics(config_with({}, kafka)) if spec.name == kafka.events_topic]
    )
    producer = make_producer(kafka)
    await producer.start()
    try:
        for record in records:
            key, value, headers = record.to_kafka(Mode.BINARY) if isinstance(record, CloudEvent) else record
            await producer.send_and_wait(kafka.events_topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


async def read_topic(kafka: KafkaConfig, topic: str, count: int, *, timeout: float = 30.0) -> list[Any]:
    """The first ``count`` records of ``topic`` (every partition), or fewer after ``timeout``."""
    consumer = AIOKafkaConsumer(
        topic,
        **client_options(kafka),
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(records) < count and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


def running_sink(config: HookbusConfig, name: str) -> contextlib.AbstractAsyncContextManager[asyncio.Task[None]]:
    """``hookbus sink <name>`` as a task; stopped (SIGTERM-style) when the block ends."""
    return running_service(lambda stop, ready: run_sink(config, name, stop=stop, ready=ready), "the sink")


async def eventually(check: Any, *, timeout: float = 30.0) -> Any:
    """Poll the async ``check`` until it returns something truthy; its last answer after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await check()
        if answer or loop.time() >= deadline:
            return answer
        await asyncio.sleep(0.2)


async def committed_offsets(kafka: KafkaConfig, group_id: str, topic: str) -> int:
    """The sum over the partitions of ``topic`` of what ``group_id`` committed (0 where nothing)."""
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    return sum(meta.offset for partition, meta in offsets.items() if partition.topic == topic and meta.offset > 0)


def header(record: Any, name: str) -> str | None:
    return next((value.decode() for key, value in record.headers if key == name), None)
