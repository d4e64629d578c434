"""Reading one record from Kafka on demand, where the index points: an accepted request's
raw record, the event it became. The index never copies either."""

from __future__ import annotations

import asyncio
import time
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from hookbus.config import HookbusConfig
from hookbus.errors import KafkaUnavailableError
from hookbus.kafka import client_options, max_record_bytes

__all__ = ["RecordFetcher"]

FETCH_SECONDS: Final = 3.0
"""How long one record is waited for; past it the record counts as gone (retention removed it)."""


class RecordFetcher:
    """One consumer of its own (no group), reading one record at a time."""

    def __init__(self, config: HookbusConfig) -> None:
        record_bytes = max_record_bytes(config)
        self._consumer = AIOKafkaConsumer(
            **client_options(config.kafka),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=record_bytes,
        )
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def record(self, topic: str, partition: int, offset: int) -> ConsumerRecord[bytes, bytes] | None:
        """The record at ``offset``, or ``None`` when Kafka no longer has it."""
        tp = TopicPartition(topic, partition)
        async with self._lock:
            try:
                self._consumer.assign([tp])
                self._consumer.seek(tp, offset)
                deadline = time.monotonic() + FETCH_SECONDS
                while time.monotonic() < deadline:
                    batch = await self._consumer.getmany(tp, timeout_ms=500, max_records=1)
                    for record in batch.get(tp, ()):
                        # Past it: the record was compacted away or is before the log's start.
                        return record if record.offset == offset else None
            except KafkaError as exc:
                raise KafkaUnavailableError(f"cannot read {topic}/{partition}@{offset}: {exc!r}") from exc
        return None
