"""Generic sources: any system that posts webhooks (an Octolis-style configurable webhook).

Nothing is known of the body, so the source's ``mapping`` option says where the event's
attributes come from, each as a JSON pointer into the body (``/customer_id``) or a request
header (``header:X-Event-Type``; the gateway keeps the headers a mapping names)::

    mapping:
      type: header:X-Event-Type     # default: "received"
      id: /event_id                 # default: the delivery (the raw event's ingest id)
      subject: /customer_id         # default: none
      time: /updated_at             # default: the received time
      partition_key: /customer_id   # default: the source name

Types are ``generic.<source>.<type>``: a generic source's vocabulary is its own, so two
systems that both say "updated" never share a type.

Without an id mapping nothing in the body tells a redelivery from a new fact (``active``,
``inactive``, ``active`` are three facts with two distinct bodies), so each delivery is
its own event: the id is the gateway's ingest id, which replays of the raw record keep.

The body is read by its content type: JSON (``application/json``, ``*+json``, or no
content type) when it parses as JSON, a form (``application/x-www-form-urlencoded``:
fields, a repeated key as a list), or else kept whole, as text when it is UTF-8 and as
base64 when not (a body labelled JSON that is not JSON included). XML is kept as text:
parsing it would need a mapping of attributes, namespaces and repeated elements to JSON
that no convention settles, and the text loses nothing. ``data.extra`` holds the request's method, query (credentials
removed), content type and how ``object`` holds the body (``body_encoding``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

from hookbus.config import SourceConfig
from hookbus.mapping import (
    JsonObject,
    Mapped,
    Mapper,
    MappingError,
    SourceMapper,
    event_data,
    id_text,
    missing,
    parse_json,
    provider_time,
    unicode_text,
)
from hookbus.rawevent import RawEvent
from hookbus.rawkey import RawKey, top_level_members

from .options import ABSENT, Locator, MappingOptions, options_of

DEFAULT_TYPE: Final = "received"
FORM_CONTENT_TYPE: Final = "application/x-www-form-urlencoded"


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type in ("application/json", "text/json") or media_type.endswith("+json")


def _kept(body: bytes) -> tuple[str, str]:
    try:
        return body.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def _form(body: bytes) -> tuple[Any, str]:
    try:
        # UTF-8 whether escaped or not: some clients send form text unescaped.
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeError:
        # Not a form of UTF-8 text (a byte or a percent-escape of another charset): kept
        # whole rather than decoded lossily.
        return _kept(body)
    return _fields(pairs), "form"


def _fields(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Name to value, or to the list of its values when the name repeats (forms and queries alike)."""
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name not in fields:
            fields[name] = value
        elif isinstance(fields[name], list):
            fields[name].append(value)
        else:
            fields[name] = [fields[name], value]
    return fields


def read_body(raw: RawEvent) -> tuple[Any, str]:
    """``(object, body_encoding)``: the body as its content type says (module docstring)."""
    media_type = _media_type(raw.content_type)
    if media_type == FORM_CONTENT_TYPE:
        return _form(raw.body)
    if not media_type or _is_json(media_type):
        try:
            return parse_json(raw.body), "json"
        except MappingError as exc:
            # A body labelled JSON that is not (a sender's mistake) is kept whole, not
            # dead-lettered: body_encoding and content_type say what it is. JSON nested
            # too deeply stays an error, as it is for every provider.
            if exc.reason != "unparseable_body":
                raise
    return _kept(raw.body)


def _request(raw: RawEvent, body_encoding: str) -> JsonObject:
    # The request's text as Unicode: a byte that is not UTF-8 in a query value or the
    # content type (kept exact in the raw record) reads as U+FFFD here, since no JSON string
    # can hold it; every repeated query parameter is kept, in order.
    query = ((unicode_text(name), unicode_text(value)) for name, value in raw.query.items())
    return {
        "method": raw.method,
        "query": _fields(query),
        "content_type": unicode_text(raw.content_type),
        "body_encoding": body_encoding,
    }


def _text(locator: Locator, headers: Mapping[str, str], document: Any) -> str:
    value = locator.find(headers, document)
    if value is ABSENT or value is None:
        raise missing(locator.label)
    return id_text(value, locator.label)


def _partition_key(name: str, locator: Locator | None, headers: Mapping[str, str], document: Any) -> str:
    return f"{name}:{_text(locator, headers, document)}" if locator is not None else name


def raw_key(source: SourceConfig) -> RawKey:
    """The gateway's key reader: the entity the source's ``mapping.partition_key`` names, read
    as :func:`bind`'s mapper reads it; ``None`` (the source key, which the mapper uses too)
    without that mapping, and for a body that is not JSON (a form is keyed by its source)."""
    locator = (options_of(source).mapping or MappingOptions()).partition_key
    name = source.name

    def read(body: bytes, headers: Mapping[str, str]) -> str | None:
        if locator is None:
            return None
        document: Any = None
        if locator.header is None:
            media_type = _media_type(headers.get("Content-Type", ""))
            if media_type and not _is_json(media_type):
                return None
            document = top_level_members(body, locator.tokens[:1])
            if document is None:
                return None
        try:
            return _partition_key(name, locator, headers, document)
        except MappingError:
            return None

    return read


def bind(source: SourceConfig) -> SourceMapper:
    mapping = options_of(source).mapping or MappingOptions()
    name = source.name

    def map_event(raw: RawEvent) -> Mapped:
        document, body_encoding = read_body(raw)
        action = _text(mapping.type, raw.headers, document) if mapping.type is not None else DEFAULT_TYPE
        subject = _text(mapping.subject, raw.headers, document) if mapping.subject is not None else None
        local_id = _text(mapping.id, raw.headers, document) if mapping.id is not None else raw.ingest_id
        time = None
        if mapping.time is not None:
            value = mapping.time.find(raw.headers, document)
            if value is ABSENT or value is None:
                raise missing(mapping.time.label)
            time = provider_time(value, mapping.time.label)
        partition_key = _partition_key(name, mapping.partition_key, raw.headers, document)
        return Mapped(
            type=f"generic.{name}.{action}",
            known_type=True,
            local_id=local_id,
            partition_key=partition_key,
            subject=subject,
            time=time,
            data=event_data(
                resource=name,
                action=action,
                resource_id=subject,
                resource_object=document,
                extra=_request(raw, body_encoding),
            ),
        )

    return map_event


MAPPER = Mapper(bind=bind, known_types={DEFAULT_TYPE: "generic.<source>.received"})
