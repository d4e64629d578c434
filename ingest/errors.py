"""Errors of the ingest package; :class:`IngestError` is their root."""

from __future__ import annotations

import traceback

from hookbus.errors import HookbusError

# Enough frames to find the bug, few enough for one log line.
_FRAMES_LOGGED = 3


def described(exc: BaseException) -> dict[str, object]:
    """Log fields for an exception nobody expected: its type and where it was raised. Never
    its message, which could quote the request (a header, the body)."""
    frames = traceback.extract_tb(exc.__traceback__)[-_FRAMES_LOGGED:]
    return {"error_type": type(exc).__name__, "raised_at": [f"{frame.filename}:{frame.lineno}" for frame in frames]}


class IngestError(HookbusError):
    reason = "ingest_error"


class PublishTimeoutError(IngestError):
    """Kafka did not acknowledge within the deadline. The caller may try again."""

    reason = "kafka_unavailable"
    retriable = True


class SpoolFullError(IngestError):
    """The local spool has no room left; the request must be refused (503) so the sender retries."""

    reason = "spool_full"
    retriable = True


class VectorFileError(IngestError):
    """A file in the signed-request vector format cannot be read."""

    reason = "bad_vector_file"


class SpoolWriteError(IngestError):
    """The disk refused a spool write (full, read-only, failing); the request is answered 503."""

    reason = "spool_write_failed"
    retriable = True


class SpoolCorruptError(IngestError):
    """A record fsynced to the spool no longer reads back as written: the disk corrupted it."""

    reason = "spool_corrupt"
