"""An output stage: batches of CloudEvents written to a destination by a :class:`~hookbus.sink.Sink`.

Records are read into batches, decoded into CloudEvents and filtered (while the batch
before is written); the batch is handed to the sink, and only once every event in it is
written or dead-lettered are the offsets committed. What the sink asks to retry is retried
with capped exponential backoff and jitter (never sooner than the sink's ``retry_after``),
with fetching paused meanwhile, so a destination that is down neither spins nor fills
memory. Records that are not CloudEvents (stage ``read``) and events the destination
refuses for good (stage ``write``) go to the dead-letter topic as they were read.

Outcomes are matched to events by event id, so a sink may return copies. A batch holds each
event id once: a record whose id is already in the batch (a redelivery, a replay) is not
handed over again but shares that id's outcome - committed when it is written, retried with
it, dead-lettered with it (each record as read).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from hookbus.cloudevent import CloudEvent, CloudEventError
from hookbus.sink import BatchResult, Rejection, Sink, SinkError
from hookbus.stage.deadletter import STAGE_READ, Failure
from hookbus.stage.record import ConsumedRecord
from hookbus.stage.runtime import Outgoing, StageRuntime

__all__ = ["STAGE_WRITE", "Decoded", "OutputStage", "RecordOf"]

STAGE_WRITE = "write"

RecordOf = Callable[[CloudEvent], ConsumedRecord | None]


@dataclass(frozen=True, slots=True)
class Decoded:
    """A batch read: the events to write, each id once, and what is dead already."""

    records: int = 0
    events: Sequence[CloudEvent] = ()
    records_by_id: Mapping[str, Sequence[ConsumedRecord]] = field(default_factory=dict)
    """Every record of each event id of the batch, in the order read."""
    unreadable: Sequence[tuple[ConsumedRecord, Failure]] = ()
    skipped: int = 0


class _Verdict(IntEnum):
    """What became of an event; a larger one wins when a result names an event twice."""

    WRITTEN = 1
    REJECTED = 2
    RETRY = 3


@dataclass(frozen=True, slots=True)
class _Outcome:
    written: list[CloudEvent]
    retry: list[CloudEvent]
    rejected: list[Rejection]
    unaccounted: int

    @classmethod
    def of(cls, pending: Sequence[CloudEvent], result: BatchResult) -> _Outcome:
        """``result`` in terms of the events handed over (by id); what it leaves out is retried."""
        given = {event.id: event for event in pending}
        verdicts: dict[str, tuple[_Verdict, Rejection | None]] = {}

        def note(event_id: str, verdict: _Verdict, rejection: Rejection | None = None) -> None:
            known = verdicts.get(event_id)
            if event_id in given and (known is None or verdict > known[0]):
                verdicts[event_id] = (verdict, rejection)

        for event in result.written:
            note(event.id, _Verdict.WRITTEN)
        for refused in result.rejected:
            note(refused.event.id, _Verdict.REJECTED, refused)
        for event in result.retry:
            note(event.id, _Verdict.RETRY)
        written: list[CloudEvent] = []
        retry: list[CloudEvent] = []
        rejected: list[Rejection] = []
        for event_id, event in given.items():
            verdict, rejection = verdicts.get(event_id, (_Verdict.RETRY, None))
            if verdict is _Verdict.WRITTEN:
                written.append(event)
            elif verdict is _Verdict.REJECTED and rejection is not None:
                rejected.append(Rejection(event, rejection.reason, rejection.detail))
            else:
                retry.append(event)
        return cls(written, retry, rejected, unaccounted=len(given) - len(verdicts))


class OutputStage:
    """Drives a sink on the runtime. ``create_sink`` is given :meth:`record_of` for the sink's context."""

    def __init__(self, create_sink: Callable[[RecordOf], Sink], accepts: Callable[[CloudEvent], bool]) -> None:
        self._accepts = accepts
        self._current = Decoded()
        self._sink = create_sink(self.record_of)

    def record_of(self, event: CloudEvent) -> ConsumedRecord | None:
        """The record an event of the batch being written was read from (the first, for a redelivered id)."""
        records = self._current.records_by_id.get(event.id)
        return records[0] if records else None

    async def open(self) -> None:
        await self._sink.open()

    async def close(self) -> None:
        await self._sink.close()

    def prepare(self, records: Sequence[ConsumedRecord]) -> Decoded:
        events: list[CloudEvent] = []
        records_by_id: dict[str, list[ConsumedRecord]] = {}
        unreadable: list[tuple[ConsumedRecord, Failure]] = []
        skipped = 0
        for record in records:
            try:
                event = CloudEvent.from_kafka(record.headers, record.value)
            except CloudEventError as exc:
                unreadable.append((record, Failure.of(exc, stage=STAGE_READ)))
                continue
            if not self._accepts(event):
                skipped += 1
            elif (same_id := records_by_id.get(event.id)) is not None:
                same_id.append(record)
            else:
                records_by_id[event.id] = [record]
                events.append(event)
        return Decoded(len(records), events, records_by_id, unreadable, skipped)

    async def settle(self, batch: Decoded, runtime: StageRuntime[Decoded]) -> bool:
        self._current = batch
        dead = [runtime.dead_letter(record, failure) for record, failure in batch.unreadable]
        written = await self._write(batch, dead, runtime)
        if written is None or not await runtime.publish(dead):
            return False
        runtime.log.info(
            "sink_batch_done", records=batch.records, written=written, dead_lettered=len(dead), skipped=batch.skipped
        )
        return True

    async def _write(self, batch: Decoded, dead: list[Outgoing], runtime: StageRuntime[Decoded]) -> int | None:
        """Write until nothing is left to retry; rejections are added to ``dead``. The count of
        records written, or ``None`` when abandoned while waiting to retry."""
        backoff = runtime.backoff()
        pending = batch.events
        written = 0
        while pending:
            result = await self._write_once(pending, runtime)
            outcome = _Outcome.of(pending, result)
            if outcome.unaccounted:
                runtime.log.warning("sink_result_incomplete", missing=outcome.unaccounted)
            written += sum(len(batch.records_by_id[event.id]) for event in outcome.written)
            for event, reason, detail in outcome.rejected:
                failure = Failure(STAGE_WRITE, reason, detail)
                dead.extend(runtime.dead_letter(record, failure) for record in batch.records_by_id[event.id])
            pending = outcome.retry
            if pending:
                delay = backoff.next_delay(at_least=result.retry_after)
                runtime.log.warning("sink_batch_retry", events=len(pending), retry_in=round(delay, 3))
                if not await runtime.wait_paused(delay):
                    return None
        return written

    async def _write_once(self, pending: Sequence[CloudEvent], runtime: StageRuntime[Decoded]) -> BatchResult:
        try:
            return await self._sink.write(pending)
        except SinkError as exc:
            runtime.log.warning("sink_write_failed", reason=exc.reason, retriable=exc.retriable, error=exc.detail)
            if exc.retriable:
                return BatchResult(retry=pending)
            return BatchResult(rejected=[Rejection(event, exc.reason, exc.detail) for event in pending])
        except Exception as exc:  # a sink's bug must not lose events: retry them
            runtime.log.error("sink_write_crashed", error=repr(exc), exc_info=True)
            return BatchResult(retry=pending)
