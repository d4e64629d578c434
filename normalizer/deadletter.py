"""Dead letters: raw records the normalizer could not turn into an event, kept whole.

A dead letter is the ORIGINAL record - its key, its value bytes and its headers exactly as
read - plus ``hookbus-dlq-*`` headers saying why and where it came from:

``hookbus-dlq-stage``
    where it failed: ``read`` (not a raw event), ``route``, ``map``, ``validate``,
    ``normalize`` (an unexpected error) or ``publish``.
``hookbus-dlq-reason``
    the error's machine-readable reason, e.g. ``unknown_source``, ``unparseable_body``.
``hookbus-dlq-detail``
    one short line for people. Never the body, a signature or a secret: errors that might
    quote the input are described by their class name only.
``hookbus-dlq-time``
    when it was dead-lettered (RFC 3339, UTC).
``hookbus-dlq-topic``, ``hookbus-dlq-partition``, ``hookbus-dlq-offset``
    the record it is a copy of.

Stripping the ``hookbus-dlq-*`` headers gives back the original record, which is what
``hookbus replay`` sends to the raw topic again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from hookbus.errors import HookbusError
from hookbus.mapping import MappingError
from hookbus.rawevent import RawEventError, format_time, parse_time
from normalizer.errors import DeadLetterError, NormalizerError

DLQ_HEADER_PREFIX = "hookbus-dlq-"
STAGE_HEADER = "hookbus-dlq-stage"
REASON_HEADER = "hookbus-dlq-reason"
DETAIL_HEADER = "hookbus-dlq-detail"
TIME_HEADER = "hookbus-dlq-time"
TOPIC_HEADER = "hookbus-dlq-topic"
PARTITION_HEADER = "hookbus-dlq-partition"
OFFSET_HEADER = "hookbus-dlq-offset"
MAX_DETAIL_CHARS = 200

STAGE_READ = "read"
STAGE_NORMALIZE = "normalize"
STAGE_PUBLISH = "publish"
REASON_INTERNAL_ERROR = "internal_error"
REASON_PUBLISH_FAILED = "publish_failed"

Headers = Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a record is dead-lettered."""

    stage: str
    reason: str
    detail: str

    @classmethod
    def of(cls, error: HookbusError) -> Failure:
        """The failure a hookbus error describes; its detail names what is wrong, not the input."""
        if isinstance(error, NormalizerError | MappingError):
            stage = error.stage
        elif isinstance(error, RawEventError):
            stage = STAGE_READ
        else:
            stage = STAGE_NORMALIZE
        return cls(stage=stage, reason=error.reason, detail=short_detail(error.detail))

    @classmethod
    def unexpected(cls, stage: str, reason: str, error: BaseException) -> Failure:
        """A failure from an error hookbus did not anticipate. Only its class name is kept:
        its message may quote the body (``KeyError('iban')``)."""
        return cls(stage=stage, reason=reason, detail=type(error).__name__)


@dataclass(frozen=True, slots=True)
class Origin:
    """The raw record a dead letter is a copy of."""

    topic: str
    partition: int
    offset: int


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


def short_detail(text: str) -> str:
    """One printable line of at most :data:`MAX_DETAIL_CHARS` characters."""
    line = " ".join("".join(char if char.isprintable() else " " for char in text).split())
    if len(line) > MAX_DETAIL_CHARS:
        return line[: MAX_DETAIL_CHARS - 3] + "..."
    return line


def original_headers(headers: Headers | None) -> list[tuple[str, bytes]]:
    """``headers`` without the ``hookbus-dlq-*`` ones (a null header value becomes empty)."""
    return [(name, raw or b"") for name, raw in headers or () if not name.startswith(DLQ_HEADER_PREFIX)]


def dead_letter_headers(
    headers: Headers | None, failure: Failure, origin: Origin, *, now: float | None = None
) -> list[tuple[str, bytes]]:
    """The original headers followed by the ``hookbus-dlq-*`` ones for ``failure`` and ``origin``.

    Headers of an earlier dead-lettering are replaced, so a record that fails again after
    a replay carries one reason: the latest.
    """
    added = [
        (STAGE_HEADER, failure.stage),
        (REASON_HEADER, failure.reason),
        (DETAIL_HEADER, short_detail(failure.detail)),
        (TIME_HEADER, format_time(time.time() if now is None else now)),
        (TOPIC_HEADER, origin.topic),
        (PARTITION_HEADER, str(origin.partition)),
        (OFFSET_HEADER, str(origin.offset)),
    ]
    return original_headers(headers) + [(name, text.encode("utf-8")) for name, text in added]
