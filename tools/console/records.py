"""What the console's index keeps of each record it reads: a row of metadata and where the
record is, never an accepted body or an event's data (those stay in Kafka and are read on
demand, so Kafka's retention and access control keep governing them).

Each topic the console reads has a kind (:class:`TopicKind`); :func:`row_of` turns one
record of it into a row, or ``None`` when the record is not what that topic holds (counted,
never fatal: the index skips what it cannot read, as a reader of someone else's topic must).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from hookbus.cloudevent import STRUCTURED_CONTENT_TYPE
from hookbus.delivery import DeliveryReport, DeliveryReportFormatError
from hookbus.rawevent import HEADER_PREFIX, SOURCE_HEADER
from hookbus.requestlog import RequestLogEntry, RequestLogFormatError
from hookbus.stage.deadletter import DLQ_HEADER_PREFIX
from hookbus.stage.record import KafkaHeaders
from normalizer.deadletter import DeadLetter
from normalizer.errors import DeadLetterError
from normalizer.normalizer import SOURCE_PREFIX
from tools.replay import EDITED_HEADER

__all__ = [
    "NORMALIZER_STAGE",
    "SINK_STAGE_PREFIX",
    "DeadLetterRow",
    "DeliveryRow",
    "EventRow",
    "RecordAt",
    "RequestRow",
    "Row",
    "TopicKind",
    "row_of",
]

NORMALIZER_STAGE = "normalizer"
SINK_STAGE_PREFIX = "sink:"
_SINK_HEADER = DLQ_HEADER_PREFIX + "sink"


class TopicKind(StrEnum):
    REQUESTS = "requests"
    EVENTS = "events"
    NORMALIZER_DLQ = "normalizer_dlq"
    SINK_DLQ = "sink_dlq"
    DELIVERIES = "deliveries"


@dataclass(frozen=True, slots=True)
class RecordAt:
    """Where a record is: what the index points at instead of copying it."""

    topic: str
    partition: int
    offset: int

    @property
    def id(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True, slots=True)
class RequestRow:
    entry: RequestLogEntry


@dataclass(frozen=True, slots=True)
class EventRow:
    at: RecordAt
    time: float
    """When the event was published (the record's timestamp)."""
    event_id: str
    ingest_id: str | None
    source: str | None
    type: str | None
    subject: str | None


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    at: RecordAt
    time: float
    stage: str
    """``normalizer`` or ``sink:<name>``."""
    sink: str | None
    reason: str
    detail: str
    source: str | None
    ingest_id: str | None
    event_id: str | None
    edited: bool


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    at: RecordAt
    report: Mapping[str, Any]
    """The delivery report as published (its JSON document)."""


Row = RequestRow | EventRow | DeadLetterRow | DeliveryRow


def row_of(
    kind: TopicKind,
    at: RecordAt,
    timestamp_ms: int,
    headers: KafkaHeaders | None,
    value: bytes | None,
    *,
    sink: str | None = None,
) -> Row | None:
    """The index row of one record of a topic of ``kind`` (``sink``: whose dead-letter topic it is)."""
    time = timestamp_ms / 1000
    if kind is TopicKind.REQUESTS:
        try:
            return RequestRow(RequestLogEntry.from_json(value or b""))
        except RequestLogFormatError:
            return None
    if kind is TopicKind.DELIVERIES:
        report = _delivery_report(value)
        return None if report is None else DeliveryRow(at, report)
    if kind is TopicKind.EVENTS:
        attributes = _event_attributes(headers, value)
        event_id = attributes.get("id")
        if event_id is None:
            return None
        return EventRow(
            at,
            time,
            event_id,
            attributes.get("ingestid"),
            _source_name(attributes.get("source")),
            attributes.get("type"),
            attributes.get("subject"),
        )
    try:
        letter = DeadLetter.from_kafka(None, headers, value)
    except DeadLetterError:
        return None
    edited = any(name == EDITED_HEADER and raw == b"true" for name, raw in letter.headers)
    if kind is TopicKind.NORMALIZER_DLQ:
        raw = {name.removeprefix(HEADER_PREFIX): _text(value) for name, value in letter.headers}
        stage, source, ingest_id, event_id = (
            NORMALIZER_STAGE,
            raw.get(SOURCE_HEADER.removeprefix(HEADER_PREFIX)),
            raw.get("ingest-id"),
            None,
        )
    else:
        attributes = _event_attributes(letter.headers, value)
        sink = sink or next((_text(raw) for name, raw in headers or () if name == _SINK_HEADER), None)
        stage, source, ingest_id, event_id = (
            SINK_STAGE_PREFIX + (sink or ""),
            _source_name(attributes.get("source")),
            attributes.get("ingestid"),
            attributes.get("id"),
        )
    return DeadLetterRow(
        at=at,
        time=letter.dead_lettered_at if letter.dead_lettered_at is not None else time,
        stage=stage,
        sink=sink if kind is TopicKind.SINK_DLQ else None,
        reason=letter.failure.reason,
        detail=letter.failure.detail,
        source=source,
        ingest_id=ingest_id,
        event_id=event_id,
        edited=edited,
    )


def _delivery_report(value: bytes | None) -> dict[str, Any] | None:
    """A delivery report (:mod:`hookbus.delivery`) as its JSON document, or ``None``."""
    try:
        report = DeliveryReport.from_json(value or b"")
    except DeliveryReportFormatError:
        return None
    return report.to_document()


def _text(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", "replace")


def _source_name(event_source: str | None) -> str | None:
    if event_source is None:
        return None
    return event_source.removeprefix(SOURCE_PREFIX)


def _event_attributes(headers: KafkaHeaders | None, value: bytes | None) -> dict[str, str]:
    """The string attributes of a CloudEvent record in either mode, without decoding a binary event's data."""
    by_name = {name.lower(): _text(raw) for name, raw in headers or ()}
    if by_name.get("content-type", "").startswith(STRUCTURED_CONTENT_TYPE):
        try:
            document = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            return {}
        if not isinstance(document, dict):
            return {}
        return {name: item for name, item in document.items() if name != "data" and isinstance(item, str)}
    return {name.removeprefix("ce_"): text for name, text in by_name.items() if name.startswith("ce_")}
