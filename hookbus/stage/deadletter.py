"""Dead letters: records a stage could not handle, kept whole, with why in their headers.

A dead letter is the ORIGINAL record - its key, its value bytes and its headers exactly as
read - plus ``hookbus-dlq-*`` headers saying why and where it came from:

``hookbus-dlq-stage``
    where it failed: ``read`` (not what the stage reads), ``publish`` (Kafka refused the
    stage's output for good), ``write`` (a sink's destination refused it), or a stage of
    its own (the normalizer's ``route``, ``map``, ``validate``, ``normalize``).
``hookbus-dlq-reason``
    the error's machine-readable reason, e.g. ``unknown_source``, ``unparseable_body``.
``hookbus-dlq-detail``
    one short line for people. Never the body, a signature or a secret: errors that might
    quote the input are described by their class name only.
``hookbus-dlq-time``
    when it was dead-lettered (RFC 3339, UTC).
``hookbus-dlq-topic``, ``hookbus-dlq-partition``, ``hookbus-dlq-offset``
    the record it is a copy of.
``hookbus-dlq-<name>``
    what else the stage says, e.g. ``hookbus-dlq-sink``, the sink instance that refused it.

Stripping the ``hookbus-dlq-*`` headers gives back the original record, which is what
``hookbus replay`` sends to the raw topic again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hookbus.errors import HookbusError
from hookbus.rawevent import format_time

__all__ = [
    "DETAIL_HEADER",
    "DLQ_HEADER_PREFIX",
    "MAX_DETAIL_CHARS",
    "OFFSET_HEADER",
    "PARTITION_HEADER",
    "REASON_HEADER",
    "REASON_PUBLISH_FAILED",
    "STAGE_HEADER",
    "STAGE_PUBLISH",
    "STAGE_READ",
    "TIME_HEADER",
    "TOPIC_HEADER",
    "Failure",
    "Headers",
    "Origin",
    "dead_letter_headers",
    "original_headers",
    "short_detail",
]

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
STAGE_PUBLISH = "publish"
REASON_PUBLISH_FAILED = "publish_failed"

Headers = Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a record is dead-lettered."""

    stage: str
    reason: str
    detail: str

    @classmethod
    def of(cls, error: HookbusError, *, stage: str) -> Failure:
        """The failure a hookbus error describes; its detail names what is wrong, not the input."""
        return cls(stage=stage, reason=error.reason, detail=short_detail(error.detail))

    @classmethod
    def unexpected(cls, stage: str, reason: str, error: BaseException) -> Failure:
        """A failure from an error hookbus did not anticipate. Only its class name is kept:
        its message may quote the body (``KeyError('iban')``)."""
        return cls(stage=stage, reason=reason, detail=type(error).__name__)


@dataclass(frozen=True, slots=True)
class Origin:
    """The record a dead letter is a copy of."""

    topic: str
    partition: int
    offset: int


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
    headers: Headers | None,
    failure: Failure,
    origin: Origin,
    *,
    extra: Mapping[str, str] | None = None,
    now: float | None = None,
) -> list[tuple[str, bytes]]:
    """The original headers followed by the ``hookbus-dlq-*`` ones for ``failure`` and
    ``origin``, then ``hookbus-dlq-<name>`` for each of ``extra``.

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
        *((DLQ_HEADER_PREFIX + name, text) for name, text in (extra or {}).items()),
    ]
    return original_headers(headers) + [(name, text.encode("utf-8")) for name, text in added]
