"""Containing what one record does to a stage: an exception on it is that record's failure.

A stage's work on one record - decoding, mapping, validating, encoding it - is computation,
so an exception there is a bug or a record the code cannot handle (JSON nested deeper than
the encoder goes, say), and it would be raised again on every restart: the record would
stall its partition, and the process the others. :func:`contained` tries the work a bounded
number of times (a passing failure of the process, such as memory, may go away) and then
gives the :class:`~hookbus.stage.deadletter.Failure` that dead-letters the record. The
runtime contains every stage's per-record work with it, and the offline tools use it to
report such a record the way the stage would dead-letter it.

Only the exception's class name and where it was raised are kept, in the failure and the
log: its message may quote the body (``KeyError('iban')``).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import TypeVar

import structlog

from hookbus.stage.deadletter import Failure

__all__ = ["REASON_INTERNAL_ERROR", "REASON_WRITE_CRASHED", "contained", "raised_where"]

REASON_INTERNAL_ERROR = "internal_error"
"""The stage's own work on a record raised (decoding, mapping, validating, encoding)."""
REASON_WRITE_CRASHED = "write_crashed"
"""A sink's ``write`` raised, for this event alone, something that is not a :class:`~hookbus.sink.SinkError`."""

ResultT = TypeVar("ResultT")
Logger = structlog.stdlib.BoundLogger


def contained(
    work: Callable[[], ResultT],
    *,
    attempts: int,
    stage: str,
    reason: str = REASON_INTERNAL_ERROR,
    log: Logger | None = None,
    **context: object,
) -> ResultT | Failure:
    """What ``work()`` returns, tried up to ``attempts`` times while it raises an Exception;
    after the last, the failure that dead-letters the record (``stage``, ``reason``, the
    exception's class name). Each exception is logged to ``log`` with ``context``."""
    tries = max(1, attempts)
    error: Exception | None = None
    for attempt in range(1, tries + 1):
        try:
            return work()
        except Exception as exc:
            error = exc
            if log is not None:
                log.error(
                    "record_work_raised",
                    stage=stage,
                    error=type(exc).__name__,
                    where=raised_where(exc),
                    attempt=attempt,
                    attempts=tries,
                    **context,
                )
    assert error is not None
    return Failure.unexpected(stage, reason, error)


def raised_where(error: BaseException) -> str:
    """The innermost frame of ``error``'s traceback: file, line and function, never the message."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    frame = frames[-1]
    return f"{frame.filename}:{frame.lineno} in {frame.name}"
