"""Publishing accepted requests: the step between "verified" and "answered 2xx".

The gateway's handler knows only the :class:`Publisher` protocol: ``publish`` returns once
the event is durable (a :class:`Receipt`) or raises a retriable error, which the handler
answers with 503 so the sender tries again. :class:`KafkaPublisher` is durable once every
in-sync replica acknowledged. A spooling publisher (fsync the event to a bounded local
spool when Kafka is slow to acknowledge, drain the spool in order when it is back) slots in
by wrapping a :class:`KafkaPublisher` behind the same protocol; the handler does not change.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from hookbus.config import HookbusConfig
from hookbus.errors import KafkaUnavailableError
from hookbus.kafka import make_producer, max_record_bytes
from hookbus.rawevent import RawEvent
from ingest.errors import IngestError, PublishTimeoutError
from ingest.verdict import Reason

READINESS_TIMEOUT_SECONDS = 1.0
READINESS_CACHE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where an event was made durable: a Kafka topic, partition and offset."""

    topic: str
    partition: int
    offset: int


class Publisher(Protocol):
    """Makes an accepted raw event durable before the sender is answered."""

    async def publish(self, event: RawEvent) -> Receipt:
        """Return once the event is durable.

        Raises a retriable :class:`~hookbus.errors.HookbusError` (reason ``kafka_unavailable``)
        when that did not happen within the deadline; the event may still arrive later, so a
        sender that retries can cause a duplicate (delivery is at least once).
        """
        ...

    async def ready(self) -> bool:
        """Whether a publish can succeed right now (for the readiness probe)."""
        ...


class KafkaPublisher:
    """Publishes to the raw topic with an idempotent ``acks=all`` producer it owns."""

    def __init__(self, producer: AIOKafkaProducer, *, topic: str, ack_timeout: float) -> None:
        self._producer = producer
        self._topic = topic
        self._ack_timeout = ack_timeout
        self._readiness: tuple[float, bool] | None = None
        self._readiness_check: asyncio.Task[bool] | None = None

    @classmethod
    def from_config(cls, config: HookbusConfig) -> KafkaPublisher:
        producer = make_producer(config.kafka, max_request_size=max_record_bytes(config))
        return cls(producer, topic=config.kafka.raw_topic, ack_timeout=config.gateway.ack_timeout_seconds)

    async def start(self) -> None:
        try:
            await self._producer.start()
        except (KafkaError, OSError) as exc:
            raise KafkaUnavailableError(f"cannot start the Kafka producer: {exc!r}") from exc

    async def stop(self) -> None:
        """Deliver what is still buffered, then close the producer."""
        if self._readiness_check is not None:
            self._readiness_check.cancel()
        await self._producer.stop()

    async def publish(self, event: RawEvent) -> Receipt:
        try:
            async with asyncio.timeout(self._ack_timeout):
                delivery = await self._producer.send(
                    self._topic, event.body, key=event.kafka_key, headers=event.kafka_headers()
                )
                metadata = await delivery
        except TimeoutError as exc:
            raise PublishTimeoutError(f"Kafka did not acknowledge within {self._ack_timeout:g} s") from exc
        except MessageSizeTooLargeError as exc:
            # The request's headers pushed the record past the topic's limit: retrying cannot help.
            raise IngestError("the request is too large to keep", reason=Reason.TOO_LARGE, retriable=False) from exc
        except KafkaError as exc:
            raise KafkaUnavailableError(f"Kafka refused the record: {type(exc).__name__}") from exc
        return Receipt(topic=metadata.topic, partition=metadata.partition, offset=metadata.offset)

    async def ready(self) -> bool:
        """Whether the cluster answers a metadata request and knows the raw topic.

        The answer is cached for about a second and concurrent probes share one request, so
        probes do not hammer the broker.
        """
        now = time.monotonic()
        if self._readiness is not None and now - self._readiness[0] < READINESS_CACHE_SECONDS:
            return self._readiness[1]
        if self._readiness_check is None or self._readiness_check.done():
            self._readiness_check = asyncio.create_task(self._check_cluster())
        ready = await asyncio.shield(self._readiness_check)
        self._readiness = (time.monotonic(), ready)
        return ready

    async def _check_cluster(self) -> bool:
        try:
            async with asyncio.timeout(READINESS_TIMEOUT_SECONDS):
                metadata = await self._producer.client.fetch_all_metadata()
        except (TimeoutError, KafkaError, OSError):
            return False
        return self._topic in metadata.topics()
