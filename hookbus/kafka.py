"""Kafka clients and topics, set up one way for every service.

Producers are idempotent with ``acks=all``: an acknowledged record is on every in-sync
replica, and retries never duplicate it. Topics are created with a ``max.message.bytes``
large enough for the largest body a source accepts plus its headers. Producers and consumers
go back to ``bootstrap_servers`` when no broker they know answers (:mod:`hookbus.rebootstrap`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from hookbus.config import HookbusConfig, KafkaConfig
from hookbus.errors import KafkaUnavailableError
from hookbus.rebootstrap import rebootstrapping

__all__ = [
    "MIN_RECORD_BYTES",
    "RECORD_OVERHEAD_BYTES",
    "TopicSpec",
    "client_options",
    "ensure_topics",
    "hookbus_topics",
    "make_consumer",
    "make_producer",
    "max_record_bytes",
]

# Room for the hookbus-* headers and the record framing around the largest body.
RECORD_OVERHEAD_BYTES = 64 * 1024
MIN_RECORD_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


def max_record_bytes(config: HookbusConfig) -> int:
    """The largest record any service may write: the largest body any source accepts, plus headers."""
    largest_body = max((source.max_body_bytes for source in config.sources), default=0)
    return max(MIN_RECORD_BYTES, largest_body + RECORD_OVERHEAD_BYTES)


def hookbus_topics(config: HookbusConfig) -> list[TopicSpec]:
    """The topics the pipeline needs: raw, events and the dead-letter topic."""
    kafka = config.kafka
    record_limit = {"max.message.bytes": str(max_record_bytes(config))}
    return [
        TopicSpec(name, kafka.topic_partitions, kafka.replication_factor, record_limit)
        for name in (kafka.raw_topic, kafka.events_topic, kafka.dlq_topic)
    ]


def client_options(kafka: KafkaConfig) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = (
            kafka.sasl_password.value.decode("utf-8") if kafka.sasl_password is not None else None
        )
    return options


def make_producer(
    kafka: KafkaConfig, *, max_request_size: int = MIN_RECORD_BYTES, **overrides: Any
) -> AIOKafkaProducer:
    """An idempotent, acks=all producer. Not started: the caller owns its lifecycle."""
    options: dict[str, Any] = {
        **client_options(kafka),
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if kafka.compression_type == "none" else kafka.compression_type,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "max_request_size": max_request_size,
        "request_timeout_ms": 30_000,
    }
    options.update(overrides)
    producer = AIOKafkaProducer(**options)
    rebootstrapping(producer.client)
    return producer


def make_consumer(
    kafka: KafkaConfig,
    *topics: str,
    group_id: str,
    max_record_size: int = MIN_RECORD_BYTES,
    **overrides: Any,
) -> AIOKafkaConsumer:
    """A consumer in ``group_id`` that commits only when told to (at-least-once)."""
    options: dict[str, Any] = {
        **client_options(kafka),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_partition_fetch_bytes": max(MIN_RECORD_BYTES, max_record_size),
        "fetch_max_bytes": max(50 * MIN_RECORD_BYTES, max_record_size),
    }
    options.update(overrides)
    consumer = AIOKafkaConsumer(*topics, **options)
    # aiokafka names no public accessor for the consumer's client.
    rebootstrapping(consumer._client)
    return consumer


async def ensure_topics(kafka: KafkaConfig, topics: Iterable[TopicSpec], *, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(**client_options(kafka), request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                topic_configs=dict(spec.configs),
            )
            for spec in topics
            if spec.name not in existing
        ]
        if missing:
            # Another service may create one first: that is what we wanted anyway.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            await _until_listed(admin, [topic.name for topic in missing], timeout)
    except (KafkaError, TimeoutError, OSError) as exc:
        raise KafkaUnavailableError(f"cannot create topics on {kafka.bootstrap_servers}: {exc!r}") from exc
    finally:
        await admin.close()


async def _until_listed(admin: AIOKafkaAdminClient, names: list[str], timeout: float) -> None:
    """Wait until the broker describes every new topic with its partitions.

    CreateTopics is answered before the metadata reaches every listener, and a client
    started at once may not see the topic yet.
    """
    async with asyncio.timeout(timeout):
        while True:
            described = await admin.describe_topics(names)
            if all(topic.get("error_code") == 0 and topic.get("partitions") for topic in described):
                return
            await asyncio.sleep(0.05)
