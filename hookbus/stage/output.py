"""An output stage: batches of CloudEvents written to a destination by a :class:`~hookbus.sink.Sink`.

Records are read into batches, decoded into CloudEvents and filtered (while the batch
before is written); the batch is handed to the sink, and only once every event in it is
written or dead-lettered are the offsets committed. What the sink asks to retry is retried
with capped exponential backoff and jitter (never sooner than the sink's ``retry_after``),
with fetching paused meanwhile, so a destination that is down neither spins nor fills
memory. Records that are not CloudEvents (stage ``read``) and events the destination
refuses for good (stage ``write``) go to the dead-letter topic as they were read.

What the sink says is an outage - a retriable :class:`~hookbus.sink.SinkError`, or an
error that says so by its kind (:func:`~hookbus.stage.backoff.is_outage`: a connection, a
timeout, a transient Kafka error) - is retried without bound. Anything else ``write``
raises is a crash, which a whole batch cannot pin on one event: after ``max_attempts``
crashes the rest of the batch is written one event at a time, in order, and an event the
sink still crashes on alone ``max_attempts`` times is dead-lettered (stage ``write``,
reason ``write_crashed``, the exception's class name: its message may quote the data),
while its batch-mates are written. Decoding a record raising is contained the same way
(stage ``read``, reason ``internal_error``).

Each outcome is also reported (:mod:`hookbus.delivery`), when the sink has a deliveries topic:
a ``written`` or ``dead_lettered`` report of every event of the batch is published after its
dead letters are acknowledged and before the batch is committed, so each outcome has a report
at least once; a ``retry`` report is published as the retry is decided. Reports are best
effort: one Kafka does not acknowledge is logged and counted
(``hookbus_sink_delivery_reports_failed_total``) and the batch is committed all the same -
tracking must never turn a problem of the deliveries topic into an outage of the sink.

Outcomes are matched to events by event id, so a sink may return copies. A batch holds each
event id once: a record whose id is already in the batch (a redelivery, a replay) is not
handed over again but shares that id's outcome - committed when it is written, retried with
it, dead-lettered with it (each record as read).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from hookbus.cloudevent import CloudEvent, CloudEventError
from hookbus.delivery import DeliveryReport, Outcome
from hookbus.ops_server import DESTINATION_UNREACHABLE
from hookbus.rawevent import RawEventError, parse_time
from hookbus.sink import BatchResult, ProbedSink, Rejection, Sink, SinkError
from hookbus.sink_tables import RECEIVED_TIME_EXTENSION
from hookbus.stage.backoff import is_outage
from hookbus.stage.containment import REASON_WRITE_CRASHED, raised_where
from hookbus.stage.deadletter import STAGE_READ, Failure
from hookbus.stage.metrics import (
    RETRY_CRASHED,
    RETRY_REQUESTED,
    RETRY_UNAVAILABLE,
    SINK_DEAD_LETTERS,
    SINK_DELIVERY_REPORTS_FAILED,
    SINK_EVENT_AGE_SECONDS,
    SINK_RETRIES,
    SINK_SKIPPED,
    SINK_WRITE_SECONDS,
    SINK_WRITTEN,
)
from hookbus.stage.record import ConsumedRecord, KafkaHeaders
from hookbus.stage.runtime import Outgoing, StageRuntime

__all__ = ["STAGE_WRITE", "Decoded", "OutputStage", "RecordOf"]

STAGE_WRITE = "write"

RecordOf = Callable[[CloudEvent], ConsumedRecord | None]
INGEST_ID_EXTENSION = "ingestid"


@dataclass(frozen=True, slots=True)
class _ReportRecord:
    """A delivery report as a record to publish, keyed by its event id."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: KafkaHeaders = ()


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
    retry_after: float | None = None
    retry_reason: str = RETRY_REQUESTED
    """Why ``retry`` is retried, for the metrics: the sink asked, or its destination is unavailable."""

    @classmethod
    def of(cls, pending: Sequence[CloudEvent], result: BatchResult, *, retry_reason: str = RETRY_REQUESTED) -> _Outcome:
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
        return cls(written, retry, rejected, len(given) - len(verdicts), result.retry_after, retry_reason)


class _Tracking:
    """The delivery reports of one batch: the final outcome of each event, and its attempts."""

    def __init__(self, sink: str, dead_letter_topic: str) -> None:
        self._sink = sink
        self._dead_letter_topic = dead_letter_topic
        self._attempts: Counter[str] = Counter()
        self._final: list[DeliveryReport] = []

    def tried(self, events: Sequence[CloudEvent]) -> None:
        self._attempts.update(event.id for event in events)

    def written(self, events: Sequence[CloudEvent]) -> None:
        self._final.extend(self._report(event, Outcome.WRITTEN) for event in events)

    def dead_lettered(self, event: CloudEvent, reason: str, detail: str | None) -> None:
        self._final.append(
            self._report(event, Outcome.DEAD_LETTERED, reason, detail, dead_letter_topic=self._dead_letter_topic)
        )

    def retried(self, events: Sequence[CloudEvent], reason: str, detail: str | None) -> list[DeliveryReport]:
        """The reports of a retry, to publish now (the final outcome comes later)."""
        return [self._report(event, Outcome.RETRY, reason, detail) for event in events]

    def take(self) -> list[DeliveryReport]:
        """The final outcomes of the batch, in the order decided."""
        final, self._final = self._final, []
        return final

    def _report(
        self,
        event: CloudEvent,
        outcome: Outcome,
        reason: str | None = None,
        detail: str | None = None,
        *,
        dead_letter_topic: str | None = None,
    ) -> DeliveryReport:
        ingest_id = event.extensions.get(INGEST_ID_EXTENSION)
        return DeliveryReport(
            time=time.time(),
            sink=self._sink,
            event_id=event.id,
            ingest_id=ingest_id if isinstance(ingest_id, str) else None,
            type=event.type,
            subject=event.subject,
            outcome=outcome,
            attempt=max(1, self._attempts[event.id]),
            reason=reason,
            detail=detail,
            dead_letter_topic=dead_letter_topic,
        )


class OutputStage:
    """Drives a sink on the runtime. ``create_sink`` is given :meth:`record_of` for the sink's context;
    ``name``, the sink instance's, labels its metrics and its delivery reports, published to
    ``deliveries_topic`` (none: not published)."""

    def __init__(
        self,
        create_sink: Callable[[RecordOf], Sink],
        accepts: Callable[[CloudEvent], bool],
        *,
        name: str,
        deliveries_topic: str | None = None,
    ) -> None:
        self._accepts = accepts
        self._deliveries_topic = deliveries_topic
        self._current = Decoded()
        self._sink = create_sink(self.record_of)
        self._name = name
        self._reports_failed = SINK_DELIVERY_REPORTS_FAILED.labels(name)
        self._written = SINK_WRITTEN.labels(name)
        self._skipped = SINK_SKIPPED.labels(name)
        self._write_seconds = SINK_WRITE_SECONDS.labels(name)
        self._event_age = SINK_EVENT_AGE_SECONDS.labels(name)
        # Whether the last write ended in an outage: what a sink without a probe can tell.
        self._outage = False

    def record_of(self, event: CloudEvent) -> ConsumedRecord | None:
        """The record an event of the batch being written was read from (the first, for a redelivered id)."""
        records = self._current.records_by_id.get(event.id)
        return records[0] if records else None

    async def open(self) -> None:
        await self._sink.open()

    async def close(self) -> None:
        await self._sink.close()

    async def not_ready_reasons(self) -> list[str]:
        """:data:`~hookbus.ops_server.DESTINATION_UNREACHABLE` while the last write failed for an
        outage, or while the sink's probe (:class:`~hookbus.sink.ProbedSink`) fails."""
        if self._outage or (isinstance(self._sink, ProbedSink) and not await self._sink.reachable()):
            return [DESTINATION_UNREACHABLE]
        return []

    def prepare(self, records: Sequence[ConsumedRecord], runtime: StageRuntime[Decoded]) -> Decoded:
        events: list[CloudEvent] = []
        records_by_id: dict[str, list[ConsumedRecord]] = {}
        unreadable: list[tuple[ConsumedRecord, Failure]] = []
        skipped = 0
        for record in records:
            event = runtime.contained(functools.partial(_decoded, record), record, stage=STAGE_READ)
            if isinstance(event, Failure):
                unreadable.append((record, event))
            elif not self._accepts(event):
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
        tracking = _Tracking(self._name, runtime.settings.dead_letter_topic)
        written = await self._write(batch, dead, tracking, runtime)
        if written is None or not await runtime.publish(dead):
            return False
        await self._report(tracking.take(), runtime)
        self._written.inc(written)
        self._skipped.inc(batch.skipped)
        for item in dead:
            SINK_DEAD_LETTERS.labels(self._name, item.label).inc()
        # Debug: at info a development stack would print a line per request here too.
        runtime.log.debug(
            "sink_batch_done", records=batch.records, written=written, dead_lettered=len(dead), skipped=batch.skipped
        )
        return True

    async def _report(self, reports: Sequence[DeliveryReport], runtime: StageRuntime[Decoded]) -> None:
        """Publish ``reports`` (best effort: see the module's documentation)."""
        if self._deliveries_topic is None or not reports:
            return
        records = [
            _ReportRecord(self._deliveries_topic, report.event_id.encode("utf-8"), report.to_json())
            for report in reports
        ]
        failed = await runtime.publish_best_effort(records)
        if failed:
            self._reports_failed.inc(failed)
            runtime.log.warning("delivery_reports_failed", reports=failed, of=len(records))

    async def _write(
        self, batch: Decoded, dead: list[Outgoing], tracking: _Tracking, runtime: StageRuntime[Decoded]
    ) -> int | None:
        """Write until nothing is left to retry; rejections and the events the sink crashes on
        are added to ``dead``, every outcome to ``tracking``. The count of records written, or
        ``None`` when abandoned while waiting to retry."""
        backoff = runtime.backoff()
        pending = list(batch.events)
        one_by_one = False
        crashes = 0  # in a row, writing the same events
        written = 0
        while pending:
            given = pending[:1] if one_by_one else pending
            tracking.tried(given)
            outcome = await self._write_once(given, runtime)
            if isinstance(outcome, Exception):
                crashes += 1
                if crashes < runtime.settings.max_attempts:
                    SINK_RETRIES.labels(self._name, RETRY_CRASHED).inc()
                    await self._report(tracking.retried(given, RETRY_CRASHED, type(outcome).__name__), runtime)
                    delay = backoff.next_delay()
                    runtime.log.warning("sink_batch_retry", events=len(given), retry_in=round(delay, 3))
                    if not await runtime.wait_paused(delay):
                        return None
                elif len(given) == 1:
                    crashes = 0
                    failure = Failure.unexpected(STAGE_WRITE, REASON_WRITE_CRASHED, outcome)
                    tracking.dead_lettered(given[0], failure.reason, failure.detail)
                    dead.extend(runtime.dead_letter(record, failure) for record in batch.records_by_id[given[0].id])
                    pending = pending[1:]
                else:
                    # Which event it crashes on, the batch cannot tell: each is written alone,
                    # in order, from here on. The waits start short again: the destination did
                    # not fail, the events did.
                    crashes, one_by_one, backoff = 0, True, runtime.backoff()
                    runtime.log.warning("sink_batch_one_by_one", events=len(pending))
                continue
            crashes = 0
            if outcome.unaccounted:
                runtime.log.warning("sink_result_incomplete", missing=outcome.unaccounted)
            written += sum(len(batch.records_by_id[event.id]) for event in outcome.written)
            tracking.written(outcome.written)
            self._observe_ages(outcome.written)
            for event, reason, detail in outcome.rejected:
                failure = Failure(STAGE_WRITE, reason, detail)
                tracking.dead_lettered(event, reason, detail)
                dead.extend(runtime.dead_letter(record, failure) for record in batch.records_by_id[event.id])
            pending = [*outcome.retry, *pending[len(given) :]]
            if outcome.retry:
                SINK_RETRIES.labels(self._name, outcome.retry_reason).inc()
                await self._report(tracking.retried(outcome.retry, outcome.retry_reason, None), runtime)
                delay = backoff.next_delay(at_least=outcome.retry_after)
                runtime.log.warning("sink_batch_retry", events=len(outcome.retry), retry_in=round(delay, 3))
                if not await runtime.wait_paused(delay):
                    return None
        return written

    def _observe_ages(self, written: Sequence[CloudEvent]) -> None:
        now = time.time()
        for event in written:
            received = event.extensions.get(RECEIVED_TIME_EXTENSION)
            if isinstance(received, str):
                with contextlib.suppress(RawEventError):  # not the normalizer's event: no age to tell
                    self._event_age.observe(max(0.0, now - parse_time(received)))

    async def _write_once(self, pending: Sequence[CloudEvent], runtime: StageRuntime[Decoded]) -> _Outcome | Exception:
        """What became of ``pending``, or what the sink crashed with."""
        self._outage = False
        retry_reason = RETRY_REQUESTED
        started = time.monotonic()
        try:
            result = await self._sink.write(pending)
        except SinkError as exc:
            runtime.log.warning("sink_write_failed", reason=exc.reason, retriable=exc.retriable, error=exc.detail)
            self._outage = exc.retriable
            if exc.retriable:
                result, retry_reason = BatchResult(retry=pending), RETRY_UNAVAILABLE
            else:
                result = BatchResult(rejected=[Rejection(event, exc.reason, exc.detail) for event in pending])
        except Exception as exc:
            if not is_outage(exc):
                # Only the class and the place: the message may quote an event's data.
                runtime.log.error("sink_write_crashed", error=type(exc).__name__, where=raised_where(exc))
                return exc
            # A sink that let its destination's error through unwrapped: still an outage.
            runtime.log.warning("sink_write_failed", reason="unavailable", retriable=True, error=type(exc).__name__)
            self._outage = True
            result, retry_reason = BatchResult(retry=pending), RETRY_UNAVAILABLE
        finally:
            self._write_seconds.observe(time.monotonic() - started)
        try:
            return _Outcome.of(pending, result, retry_reason=retry_reason)
        except Exception as exc:  # not a BatchResult: the sink's bug, as if write had raised
            runtime.log.error("sink_result_unreadable", error=type(exc).__name__)
            return exc


def _decoded(record: ConsumedRecord) -> CloudEvent | Failure:
    try:
        return CloudEvent.from_kafka(record.headers, record.value)
    except CloudEventError as exc:
        return Failure.of(exc, stage=STAGE_READ)
