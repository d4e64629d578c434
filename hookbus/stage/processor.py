"""A processor stage: each record becomes output records, or a failure that dead-letters it.

The outputs of a batch are published in order (records of one partition keep their order)
and every acknowledgement is awaited before the batch is committed and the next one is
published. A failure is dead-lettered at once. ``process`` raising on a record is contained:
after ``max_attempts`` tries the record is dead-lettered (the processor's ``stage``, reason
``internal_error``), so a record the code cannot handle never stops the stage. An output
Kafka refuses on its own ``max_attempts`` times is replaced by its record's dead letter
(stage ``publish``, reason ``publish_failed``).
"""

from __future__ import annotations

import functools
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
    @property
    def stage(self) -> str:
        """What ``hookbus-dlq-stage`` says of a record ``process`` raised on (``normalize``)."""
        ...

    def process(self, record: ConsumedRecord) -> Sequence[Output] | Failure:
        """The outputs of ``record`` - decoded, mapped and encoded, all of it here, so that all
        of it is contained - or why it cannot be processed. An exception is that record's
        failure (see the module)."""
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

    async def not_ready_reasons(self) -> list[str]:
        """Nothing but Kafka, which the runtime probes."""
        return []

    def prepare(self, records: Sequence[ConsumedRecord], runtime: StageRuntime[Processed]) -> Processed:
        processor = self._processor
        return [
            (record, runtime.contained(functools.partial(processor.process, record), record, stage=processor.stage))
            for record in records
        ]

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
        try:
            self._processor.published(outgoing)
        except Exception as exc:
            # Only bookkeeping (counts) is lost: the batch is acknowledged and must be committed,
            # or it would be published again and again.
            runtime.log.error("published_hook_raised", error=type(exc).__name__)
        return True
