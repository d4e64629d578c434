"""The normalizer's dead letters: raw records it could not turn into an event, kept whole.

They are encoded as every stage's are (:mod:`hookbus.stage.deadletter`); the stages a
normalizer dead letter names in ``hookbus-dlq-stage`` are ``read`` (not a raw event),
``route`` (an unknown source), ``map``, ``validate``, ``normalize`` (an unexpected error) or
``publish`` (Kafka refused the event). :class:`DeadLetter` reads one back, for ``hookbus
replay``: stripping the ``hookbus-dlq-*`` headers gives back the original record.
"""

from __future__ import annotations

from dataclasses import dataclass

from hookbus.rawevent import RawEventError, parse_time
from hookbus.stage.containment import REASON_INTERNAL_ERROR
from hookbus.stage.deadletter import (
    DETAIL_HEADER,
    DLQ_HEADER_PREFIX,
    OFFSET_HEADER,
    PARTITION_HEADER,
    REASON_HEADER,
    STAGE_HEADER,
    TIME_HEADER,
    TOPIC_HEADER,
    Failure,
    Headers,
    Origin,
    original_headers,
)
from normalizer.errors import DeadLetterError

__all__ = ["REASON_INTERNAL_ERROR", "STAGE_NORMALIZE", "DeadLetter"]

STAGE_NORMALIZE = "normalize"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead-letter record read back from the dead-letter topic."""

    failure: Failure
    origin: Origin
    dead_lettered_at: float | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    """The original record's headers, without the ``hookbus-dlq-*`` ones."""

    @classmethod
    def from_kafka(cls, key: bytes | None, headers: Headers | None, value: bytes | None) -> DeadLetter:
        """Read a dead-letter record; :class:`DeadLetterError` when it is not one."""
        ours: dict[str, str] = {}
        for name, raw in headers or ():
            if name.startswith(DLQ_HEADER_PREFIX):
                ours[name] = (raw or b"").decode("utf-8", errors="replace")
        missing = [name for name in (STAGE_HEADER, REASON_HEADER) if not ours.get(name)]
        if missing:
            raise DeadLetterError(f"missing header(s): {', '.join(missing)}")
        try:
            origin = Origin(
                topic=ours.get(TOPIC_HEADER, ""),
                partition=int(ours.get(PARTITION_HEADER, "-1")),
                offset=int(ours.get(OFFSET_HEADER, "-1")),
            )
            dead_lettered_at = parse_time(ours[TIME_HEADER]) if ours.get(TIME_HEADER) else None
        except (ValueError, RawEventError) as exc:
            raise DeadLetterError("a hookbus-dlq-* header is malformed") from exc
        return cls(
            failure=Failure(stage=ours[STAGE_HEADER], reason=ours[REASON_HEADER], detail=ours.get(DETAIL_HEADER, "")),
            origin=origin,
            dead_lettered_at=dead_lettered_at,
            key=key,
            value=value,
            headers=tuple(original_headers(headers)),
        )
