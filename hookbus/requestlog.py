"""The request log: one entry for every request the gateway answers, accepted or refused.

The gateway writes each entry as a JSON record to the request-log topic
(``kafka.requests_topic``), keyed by the source name, after it has answered; readers
(``hookbus requests``, the console) read them from there. An entry says when the request
came, from where, for which source, what the gateway decided and why, and where its raw
record went. What it never holds: a credential, a signature, or a body the gateway accepted
(that one is in the raw topic, which the entry points to). A refused request may keep a
bounded prefix of its body, within a byte budget per second, so that a refused signature can
be looked into without letting an unauthenticated sender fill a disk.

This module is the entry's format, shared by the writer (``ingest``) and every reader.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

import orjson

__all__ = [
    "ENTRY_VERSION",
    "REDACTED",
    "SHOWN_HEADERS",
    "RawPointer",
    "RequestLogEntry",
    "RequestLogFormatError",
    "clip_source",
    "logged_headers",
    "logged_query",
]

ENTRY_VERSION: Final = 1
REDACTED: Final = "[redacted]"
SHOWN_HEADERS: Final = frozenset(
    {
        "accept",
        "accept-encoding",
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "expect",
        "host",
        "traceparent",
        "tracestate",
        "transfer-encoding",
        "user-agent",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-request-id",
    }
)
"""Headers whose values an entry shows; of any other, only the name (a provider's signature,
a shared token or an API key may be in a header of any name)."""
MAX_LOGGED_HEADERS: Final = 64
MAX_TEXT_CHARS: Final = 512
MAX_SOURCE_CHARS: Final = 64


class RequestLogFormatError(ValueError):
    """A record of the request-log topic that is not an entry this version can read."""

    reason = "not_a_request_log_entry"


def _clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` as an entry can hold it: Unicode (a byte that was not UTF-8, kept by the gateway as
    a lone surrogate, becomes U+FFFD: the raw record has the exact bytes) and at most ``limit`` long."""
    text = text if len(text) <= limit else text[:limit] + "…"
    if text.isascii():
        return text
    try:
        # A byte the gateway kept as a surrogate escape becomes that byte again, then one U+FFFD.
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        data = text.encode("utf-8", "surrogatepass")
    return data.decode("utf-8", "replace")


def logged_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The request's headers as an entry keeps them: every name (lowercase, the first
    ``MAX_LOGGED_HEADERS``), the values of :data:`SHOWN_HEADERS` only, clipped."""
    logged: dict[str, str] = {}
    for name, value in headers:
        key = _clip(name.lower(), 128)
        if key in logged:
            continue
        if len(logged) >= MAX_LOGGED_HEADERS:
            break
        logged[key] = _clip(value) if key in SHOWN_HEADERS else REDACTED
    return logged


def logged_query(query: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Query parameters as an entry keeps them (the caller has already taken out the credentials):
    the first ``MAX_LOGGED_HEADERS``, clipped."""
    return tuple((_clip(name, 128), _clip(value)) for name, value in list(query)[:MAX_LOGGED_HEADERS])


@dataclass(frozen=True, slots=True)
class RawPointer:
    """Where an accepted request's raw record is: a Kafka record, or a spool until it drains."""

    topic: str
    partition: int | None = None
    offset: int | None = None
    spooled: bool = False


@dataclass(frozen=True, slots=True)
class RequestLogEntry:
    """One answered request. ``id`` is the ingest id of an accepted request (its raw record's
    ``hookbus-ingest-id``), else an id of the entry alone."""

    id: str
    time: float
    """When the request's answer was decided, Unix seconds."""
    source: str
    """The source named in the path, clipped to 64 characters: an unknown one too."""
    known_source: bool
    provider: str | None
    method: str
    client_addr: str | None
    verdict: str
    """``accept``, ``reject`` (the request was refused) or ``failed`` (it could not be stored)."""
    reason: str | None
    detail: str | None
    """The refusal's explanation, as the sender was told it."""
    status: int
    size: int | None
    """The body's length when it was read, else the declared ``Content-Length``."""
    duration_ms: float
    headers: Mapping[str, str] = field(default_factory=dict)
    query: tuple[tuple[str, str], ...] = ()
    ingest_id: str | None = None
    raw: RawPointer | None = None
    body_prefix: bytes | None = None
    """The first bytes of a refused request's body, when the budget allowed."""
    body_omitted: str | None = None
    """Why a body that was read has no prefix here: ``accepted`` (it is in the raw topic) or
    ``budget`` (more refused bodies came than the log keeps per second)."""

    def to_json(self) -> bytes:
        # Field by field rather than dataclasses.asdict, which deep-copies every value: this
        # runs for every request the gateway answers.
        document: dict[str, Any] = {name: getattr(self, name) for name in _ENTRY_FIELDS}
        document["v"] = ENTRY_VERSION
        document["headers"] = dict(self.headers)
        document["query"] = [list(pair) for pair in self.query]
        if self.raw is not None:
            document["raw"] = {name: getattr(self.raw, name) for name in _POINTER_FIELDS}
        document["body_prefix"] = (
            None if self.body_prefix is None else base64.b64encode(self.body_prefix).decode("ascii")
        )
        return orjson.dumps(document)

    @classmethod
    def from_json(cls, value: bytes) -> RequestLogEntry:
        try:
            document = orjson.loads(value)
            if not isinstance(document, dict) or document.pop("v", None) != ENTRY_VERSION:
                raise RequestLogFormatError("not a version 1 request-log entry")
            raw = document.pop("raw")
            prefix = document.pop("body_prefix")
            return cls(
                **{
                    **document,
                    "query": tuple((str(name), str(value)) for name, value in document["query"]),
                    "raw": None if raw is None else RawPointer(**raw),
                    "body_prefix": None if prefix is None else base64.b64decode(prefix, validate=True),
                }
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error) as exc:
            if isinstance(exc, RequestLogFormatError):
                raise
            raise RequestLogFormatError(f"not a request-log entry: {type(exc).__name__}") from exc


_ENTRY_FIELDS: Final = tuple(item.name for item in fields(RequestLogEntry))
_POINTER_FIELDS: Final = tuple(item.name for item in fields(RawPointer))


def clip_source(name: str) -> str:
    """A source name as an entry keeps it: an unknown one is whatever the path said."""
    return _clip(name, MAX_SOURCE_CHARS)
