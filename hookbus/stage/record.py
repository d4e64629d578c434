"""The Kafka record a stage is handed, as far as hookbus reads it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["ConsumedRecord", "KafkaHeaders"]

KafkaHeaders = Sequence[tuple[str, bytes]]


class ConsumedRecord(Protocol):
    """A record read from a topic (an aiokafka ``ConsumerRecord``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: KafkaHeaders
