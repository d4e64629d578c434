"""The mapper contract, and the helpers every provider's mapper shares.

A mapper turns one provider's raw event into a :class:`Mapped` event: the CloudEvents
attributes only the provider can know (type, id, subject, time, partition key) and the
``data`` in the one shape common to every provider (see ``docs/providers.md``). The
normalizer adds the rest (source, dataschema, the extensions) and validates the result.

``Mapper.bind`` is called once per source at startup: it checks the source's options
(raising :class:`~hookbus.errors.ConfigError`) and returns the function that maps that
source's events, so nothing is parsed or compiled per event. A mapped event's type must
start with ``<provider>.``: the normalizer refuses a mapper that names another's types.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from hookbus.cloudevent import JsonError, decode_json
from hookbus.config import SourceConfig
from hookbus.errors import HookbusError
from hookbus.rawevent import RawEvent, wire_bytes

__all__ = [
    "DIGEST_HEX_CHARS",
    "MAX_NESTING",
    "JsonObject",
    "Mapped",
    "Mapper",
    "MappingError",
    "SourceMapper",
    "bad_type",
    "changes_from_previous",
    "digest_id",
    "event_data",
    "id_text",
    "leftovers",
    "missing",
    "optional_text",
    "parse_json",
    "parse_json_object",
    "provider_time",
    "require_object",
    "require_text",
    "split_dotted_type",
    "unicode_text",
    "unix_time",
    "without_options",
]

JsonObject = dict[str, Any]
# Bytes of a digest id, in hex: 128 bits, the size of a UUID.
DIGEST_HEX_CHARS: Final = 32
# The deepest nesting of containers a body may have. A mapped event nests a body at most
# three levels deeper (event, data, object or extra), so every event stays within the 254
# levels orjson writes, and within what consumers' parsers accept; no webhook comes close.
MAX_NESTING: Final = 200


class MappingError(HookbusError):
    """The body cannot be mapped: it does not parse, or lacks what the provider's mapper needs.

    ``stage`` is where a dead letter says it failed.
    """

    reason = "unmappable"
    stage = "map"


@dataclass(frozen=True, slots=True)
class Mapped:
    """What a mapper knows of one event; the normalizer turns it into a CloudEvent.

    ``local_id`` is unique within the source: the provider's own event id, or a digest of
    what identifies the fact. ``time`` is RFC 3339 in UTC, or ``None`` when the provider
    gives no event time (the received time is used then). ``sent_time`` is when the
    provider says it sent this delivery attempt (the ``senttime`` extension), RFC 3339 UTC.
    """

    type: str
    known_type: bool
    local_id: str
    partition_key: str
    data: JsonObject
    subject: str | None = None
    time: str | None = None
    sent_time: str | None = None


SourceMapper = Callable[[RawEvent], Mapped]
"""Maps one source's raw events; raises only :class:`MappingError`."""


def without_options(map_event: SourceMapper) -> Callable[[SourceConfig], SourceMapper]:
    """``Mapper.bind`` for a provider whose sources carry no mapping options."""

    def bind(source: SourceConfig) -> SourceMapper:
        return map_event

    return bind


@dataclass(frozen=True, slots=True)
class Mapper:
    """One provider's mapper.

    ``known_types`` maps each event type the provider documents (as the provider names it)
    to its canonical CloudEvents type; the golden tests and docs/providers.md cover them all.
    """

    bind: Callable[[SourceConfig], SourceMapper]
    known_types: Mapping[str, str]


# --- reading the body -------------------------------------------------------------------


def parse_json(body: bytes) -> Any:
    """The body as JSON, numbers exact (:func:`hookbus.cloudevent.decode_json`);
    ``unparseable_body`` when it is not JSON (OfficeRnD's own example is not),
    ``too_deeply_nested`` beyond :data:`MAX_NESTING` levels."""
    try:
        return decode_json(body, max_depth=MAX_NESTING)
    except JsonError as exc:
        reason = "too_deeply_nested" if exc.reason == "too_deeply_nested" else "unparseable_body"
        raise MappingError(exc.detail, reason=reason) from exc


def parse_json_object(body: bytes) -> JsonObject:
    document = parse_json(body)
    if not isinstance(document, dict):
        raise MappingError(f"the body is a JSON {_json_kind(document)}, not an object", reason="not_an_object")
    return document


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def missing(field: str) -> MappingError:
    return MappingError(f"field {field!r} is missing", reason="missing_field")


def bad_type(field: str, expected: str, value: Any) -> MappingError:
    # The message names the JSON kind only, never the value: dead-letter headers and logs
    # must not carry body content.
    return MappingError(f"field {field!r} must be {expected}, not a {_json_kind(value)}", reason="bad_field_type")


def require_object(document: Mapping[str, Any], key: str, where: str = "") -> JsonObject:
    value = document.get(key)
    if value is None:
        raise missing(where + key)
    if not isinstance(value, dict):
        raise bad_type(where + key, "an object", value)
    return value


def require_text(document: Mapping[str, Any], key: str, where: str = "") -> str:
    """A non-empty string field."""
    value = document.get(key)
    if value is None or value == "":
        raise missing(where + key)
    if not isinstance(value, str):
        raise bad_type(where + key, "a string", value)
    return value


def optional_text(document: Mapping[str, Any], key: str, where: str = "") -> str | None:
    if document.get(key) is None or document.get(key) == "":
        return None
    return require_text(document, key, where)


def id_text(value: Any, field: str) -> str:
    """An identifier sent as a string or a whole number (Offerte Adviseur's ids are numbers)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None or value == "":
        raise missing(field)
    raise bad_type(field, "a string or a whole number", value)


def provider_time(value: Any, field: str) -> str:
    """A provider's event time (RFC 3339 with an offset, or Unix seconds) as RFC 3339 UTC."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        try:
            # A Decimal (more digits than a double) as the nearest double: the time is
            # kept to the microsecond, the value itself stays exact in the event's object.
            moment = datetime.fromtimestamp(float(value) if isinstance(value, Decimal) else value, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise bad_type(field, "a time", value) from exc
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise bad_type(field, "an RFC 3339 time", value) from exc
        if moment.tzinfo is None:
            # A time without an offset is ambiguous; guessing would reorder events silently.
            raise bad_type(field, "an RFC 3339 time with an offset", value)
    else:
        raise bad_type(field, "a time", value)
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise bad_type(field, "a time", value) from exc
    return utc.isoformat(timespec="microseconds").replace("+00:00", "Z")


def unix_time(text: str, per_second: int) -> str | None:
    """A provider's Unix timestamp (whole seconds, or ``per_second``-ths) as RFC 3339 UTC,
    exactly (integer arithmetic, no float rounding); ``None`` when it is not one."""
    if not (text.isascii() and text.isdigit()):
        return None
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(text) * 1_000_000 // per_second)
    except (OverflowError, ValueError):
        return None
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- building the event -----------------------------------------------------------------


def digest_id(*parts: str | bytes) -> str:
    """A stable id from the parts that identify a fact. Each part is length-prefixed, so
    ``("ab", "c")`` and ``("a", "bc")`` never share an id."""
    digest = hashlib.sha256()
    for part in parts:
        raw = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(raw).to_bytes(8, "big"))
        digest.update(raw)
    return digest.hexdigest()[:DIGEST_HEX_CHARS]


def changes_from_previous(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[JsonObject]:
    """Changes from a map of previous values; ``after`` is ``None`` when the field is gone."""
    return [{"field": name, "before": before, "after": current.get(name)} for name, before in previous.items()]


def leftovers(document: Mapping[str, Any], used: Iterable[str]) -> JsonObject:
    """The provider's fields no part of the canonical data took, kept as they were sent."""
    taken = frozenset(used)
    return {name: value for name, value in document.items() if name not in taken}


def event_data(
    *,
    resource: str | None,
    action: str | None,
    resource_id: str | None,
    parents: Mapping[str, str] | None = None,
    changes: list[JsonObject] | None = None,
    resource_object: Any = None,
    extra: JsonObject | None = None,
) -> JsonObject:
    """The ``data`` every provider's events share (schemas/cloudevent.json, ``$defs/data``)."""
    return {
        "resource": resource,
        "action": action,
        "resource_id": resource_id,
        "parents": dict(parents) if parents else {},
        "changes": changes if changes is not None else [],
        "object": resource_object,
        "extra": extra if extra is not None else {},
    }


def unicode_text(text: str) -> str:
    """Request text (a header or query value) as Unicode: each byte that was not UTF-8 (a lone
    surrogate, see :mod:`hookbus.rawevent`) becomes U+FFFD. For values an event only reports;
    the raw record keeps the exact bytes. Never for an id: two different bytes would merge."""
    return wire_bytes(text).decode("utf-8", "replace")


def split_dotted_type(event_type: str) -> tuple[str | None, str | None]:
    """``resource[.subresource].action`` read as (resource path, action); (None, None) otherwise."""
    resource, dot, action = event_type.rpartition(".")
    if not dot or not resource or not action:
        return None, None
    return resource, action
