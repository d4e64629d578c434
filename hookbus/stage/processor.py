"""A processor stage: each record becomes output records, or a failure that dead-letters it.

The outputs of a batch are published in order (records of one partition keep their order)
and every acknowledgement is awaited before the batch is committed and the next one is
published. A failure is dead-lettered at once; an output Kafka refuses on its own
``max_refusals`` times is replaced by its record's dead letter (stage ``publish``, reason
``publish_failed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from hookbus.stage.deadletter import Failure
from hookbus.stage.record import ConsumedRecord, KafkaHeaders
from hookbus.stage.runtime import Outgoing, StageRuntime

__all__ = ["Output", "Processed", "Processor", "ProcessorStage"]


@dataclass(frozen=True, slots=True)
class Output:
    """A record a processor makes of the record it was given."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: KafkaHeaders
    label: str
    """What it counts as in :meth:`Processor.published` (an event type, say)."""


class Processor(Protocol):
    def process(self, record: ConsumedRecord) -> Sequence[Output] | Failure:
        """The outputs of ``record``, or why it cannot be processed. Never raises an Exception."""
        ...

    def published(self, outgoing: Sequence[Outgoing]) -> None:
        """Everything a batch produced, outputs and dead letters, once it is all acknowledged."""
        ...


Processed = list[tuple[ConsumedRecord, Sequence[Output] | Failure]]


class ProcessorStage:
    """Drives a :class:`Processor` on the runtime: records are processed as they are read,
    and published while the next batch is read."""

    def __init__(self, processor: Processor) -> None:
        self._processor = processor

    async def open(self) -> None:
        """Nothing to open: a processor only computes."""

    async def close(self) -> None:
        """Nothing to close."""

    def prepare(self, records: Sequence[ConsumedRecord]) -> Processed:
        return [(record, self._processor.process(record)) for record in records]

    async def settle(self, batch: Processed, runtime: StageRuntime[Processed]) -> bool:
        outgoing: list[Outgoing] = []
        for record, result in batch:
            if isinstance(result, Failure):
                outgoing.append(runtime.dead_letter(record, result))
            else:
                outgoing.extend(
                    Outgoing(output.topic, output.key, output.value, output.headers, record, output.label)
                    for output in result
                )
        if not await runtime.publish(outgoing):
            return False
        self._processor.published(outgoing)
        return True
