"""Delivery reports: what each sink did with each event - written, retried, dead-lettered.

Every sink's output stage (:mod:`hookbus.stage.output`) publishes one JSON record per event
outcome to the deliveries topic (``kafka.deliveries_topic``, by default beside the raw topic:
``<prefix>.deliveries``), keyed by the event id, so that one webhook can be followed from its
request (the request log, :mod:`hookbus.requestlog`) through its CloudEvent (whose
``ingestid`` the report repeats) to every destination. Readers (the console) read them from
there.

A report never holds an event's data: its ids, type and subject, the sink, the outcome, and
for a retry or a dead letter the reason and a detail (an exception's class name or what the
sink said, clipped).

This module is the report's format, shared by the writer (the output stage) and every reader.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Final

import orjson

__all__ = ["REPORT_VERSION", "DeliveryReport", "DeliveryReportFormatError", "Outcome"]

REPORT_VERSION: Final = 1
MAX_DETAIL_CHARS: Final = 512


class Outcome(StrEnum):
    """What became of one event in one sink."""

    WRITTEN = "written"
    RETRY = "retry"
    """Not written yet: it is tried again (``reason`` says why)."""
    DEAD_LETTERED = "dead_lettered"
    """Given up for good: in the sink's dead-letter topic (``reason`` says why)."""


class DeliveryReportFormatError(ValueError):
    """A record of the deliveries topic that is not a report this version can read."""

    reason = "not_a_delivery_report"


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """One outcome of one event in one sink."""

    time: float
    """When the outcome was decided, Unix seconds."""
    sink: str
    """The sink instance (its name under ``sinks:``)."""
    event_id: str
    ingest_id: str | None
    """The event's ``ingestid``: the request-log entry and raw record it came from."""
    type: str | None
    subject: str | None
    outcome: Outcome
    attempt: int
    """Which write of this event (in this sink, since the batch was read) the outcome is from, from 1."""
    reason: str | None = None
    detail: str | None = None
    dead_letter_topic: str | None = None

    def __post_init__(self) -> None:
        if self.detail is not None and len(self.detail) > MAX_DETAIL_CHARS:
            object.__setattr__(self, "detail", self.detail[:MAX_DETAIL_CHARS] + "…")

    def to_document(self) -> dict[str, Any]:
        """The report as the JSON object :meth:`to_json` encodes."""
        document: dict[str, Any] = {"v": REPORT_VERSION}
        document.update((name, getattr(self, name)) for name in _FIELDS)
        return document

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_document())

    @classmethod
    def from_json(cls, value: bytes) -> DeliveryReport:
        try:
            document = orjson.loads(value)
            if not isinstance(document, dict) or document.pop("v", None) != REPORT_VERSION:
                raise DeliveryReportFormatError("not a version 1 delivery report")
            report = cls(**{**document, "outcome": Outcome(document["outcome"])})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, DeliveryReportFormatError):
                raise
            raise DeliveryReportFormatError(f"not a delivery report: {type(exc).__name__}") from exc
        if (
            not isinstance(report.sink, str)
            or not isinstance(report.event_id, str)
            or not isinstance(report.time, float | int)
        ):
            raise DeliveryReportFormatError("a delivery report names its sink, event id and time")
        return report


_FIELDS: Final = tuple(item.name for item in fields(DeliveryReport))
