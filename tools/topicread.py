"""Reading a topic from given offsets up to the end offsets taken when reading starts, without
a consumer group: what ``hookbus replay`` and ``hookbus requests`` read with, so each ends even
while the pipeline keeps writing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

__all__ = ["Span", "read_spans"]

FETCH_RECORDS = 500
FETCH_TIMEOUT_MS = 500


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    """Exclusive."""


async def read_spans(
    consumer: AIOKafkaConsumer,
    spans: dict[TopicPartition, Span],
    on_record: Callable[[], None] | None = None,
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """The records of ``spans``, in order within each partition; ends at the end offsets."""
    consumer.assign(list(spans))
    for tp, span in spans.items():
        consumer.seek(tp, span.start)
    remaining = dict(spans)
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=FETCH_TIMEOUT_MS, max_records=FETCH_RECORDS)
        for tp, records in batch.items():
            end = remaining[tp].end if tp in remaining else -1
            for record in records:
                if record.offset >= end:
                    break
                if on_record is not None:
                    on_record()
                yield record
        for tp in list(remaining):
            # The position passes the end offset too when the last offsets hold no record
            # (a transaction marker, a compacted record).
            if await consumer.position(tp) >= remaining[tp].end:
                consumer.pause(tp)
                del remaining[tp]
