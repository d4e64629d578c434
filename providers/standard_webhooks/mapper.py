"""Standard Webhooks: any sender following the specification (standardwebhooks.com, v1).

The specification fixes the headers and the signature; the body is only recommended to be
``{type, timestamp, data}`` (``type`` full-stop delimited, such as ``invoice.paid``;
``timestamp`` the event's RFC 3339 time; ``data`` the event's data). So:

- **id**: the ``webhook-id`` header. The specification makes it the idempotency key: it
  stays the same across every retry of one event, while ``webhook-timestamp`` changes.
- **type**: ``standard_webhooks.<value of the type field>`` (``standard_webhooks.invoice.paid``).
  The field is ``type``, or the top-level field the source's ``type_field`` option names.
  The specification lists no types: every sender's are its own vocabulary, so every value
  is a known type (``knowntype: true``), and the event's ``source`` tells senders apart.
- **no usable type** (the field is missing, not a string, empty, or cannot stand in a
  CloudEvents type): passed on as ``standard_webhooks.untyped`` with ``knowntype: false``,
  the field as sent kept in ``extra``. Not dead-lettered: the request was verified, so it
  is a genuine event of the sender's, and the body's shape is only a recommendation (the
  specification's own worked example, ``{"test": 2432232314}``, has no type). Parking
  every such event until someone reconfigures would stop a sender's whole stream; flagged,
  consumers filter it out and the operator sees it (and may set ``type_field``).
- **subject** and ``data.resource_id``: ``data.id`` (a string or a whole number), the
  entity the event is about in the specification's examples; none when it is absent.
- **partition key**: ``standard_webhooks:<source>:<data.id>``, so all events about one
  entity stay in order (the source is part of it: two senders' ids are unrelated); without
  ``data.id`` nothing names the entity, so the source is what is kept in order
  (``standard_webhooks:<source>``): the sender's own order, on one partition.
- **time**: the body's ``timestamp`` (RFC 3339 with an offset, or Unix seconds). A
  timestamp that is not a time is refused (``bad_field_type``), as for every provider:
  guessing would reorder events silently. Without one, the received time; never
  ``webhook-timestamp``, which is the time of the delivery attempt, not of the event.
- **data**: ``resource`` and ``action`` are the type split at its last dot (``invoice``,
  ``paid``; none for a type without a dot), ``object`` is ``data`` as sent (null when the
  body has none), and every other top-level field is in ``extra`` as sent.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from hookbus.config import SourceConfig
from hookbus.errors import ConfigError
from hookbus.mapping import (
    JsonObject,
    Mapped,
    Mapper,
    MappingError,
    SourceMapper,
    event_data,
    id_text,
    leftovers,
    missing,
    parse_json_object,
    provider_time,
    split_dotted_type,
)
from hookbus.rawevent import RawEvent
from hookbus.rawkey import RawKey, member_key

PROVIDER_NAME: Final = "standard_webhooks"
ID_HEADER: Final = "webhook-id"
TYPE_FIELD_OPTION: Final = "type_field"
DEFAULT_TYPE_FIELD: Final = "type"
TIME_FIELD: Final = "timestamp"
DATA_FIELD: Final = "data"
UNTYPED: Final = "untyped"
_TYPE_PREFIX: Final = f"{PROVIDER_NAME}."
# schemas/cloudevent.json bounds the whole type to 512 characters.
_MAX_TYPE_CHARS: Final = 512 - len(_TYPE_PREFIX)


def type_field(source: SourceConfig) -> str:
    """The source's ``type_field`` option, checked; :class:`ConfigError` naming it otherwise."""
    value = source.options.get(TYPE_FIELD_OPTION)
    if value is None:
        return DEFAULT_TYPE_FIELD
    if not isinstance(value, str) or not value:
        raise ConfigError("must name a top-level field of the body", source=source.name, key=TYPE_FIELD_OPTION)
    if value in {TIME_FIELD, DATA_FIELD}:
        raise ConfigError(f"{value!r} is the body's {value}, not its type", source=source.name, key=TYPE_FIELD_OPTION)
    return value


def _usable_type(value: Any) -> str | None:
    """The sender's type when it can stand in a CloudEvents type: one printable line, not too long."""
    if isinstance(value, str) and 0 < len(value) <= _MAX_TYPE_CHARS and value.isprintable():
        return value
    return None


def _entity_id(data: Any) -> str | None:
    """``data.id`` when it is an id; anything else stays in ``object`` as sent, unread."""
    if not isinstance(data, dict):
        return None
    try:
        return id_text(data.get("id"), "data.id")
    except MappingError:
        return None


def _webhook_id(raw: RawEvent) -> str:
    message_id = raw.headers.get(ID_HEADER)
    if not message_id:
        raise missing(f"header {ID_HEADER}")
    return message_id


def _partition_key(source_key: str, body: JsonObject) -> str:
    resource_id = _entity_id(body.get(DATA_FIELD))
    return f"{source_key}:{resource_id}" if resource_id is not None else source_key


def raw_key(source: SourceConfig) -> RawKey:
    """The gateway's key reader: the entity :func:`bind`'s mapper keys the event by."""
    return member_key((DATA_FIELD,), functools.partial(_partition_key, f"{PROVIDER_NAME}:{source.name}"))(source)


def bind(source: SourceConfig) -> SourceMapper:
    field = type_field(source)
    source_key = f"{PROVIDER_NAME}:{source.name}"

    def map_event(raw: RawEvent) -> Mapped:
        body = parse_json_object(raw.body)
        event_type = _usable_type(body.get(field))
        resource, action = split_dotted_type(event_type) if event_type is not None else (None, None)
        resource_id = _entity_id(body.get(DATA_FIELD))
        timestamp = body.get(TIME_FIELD)
        used = [DATA_FIELD]
        if event_type is not None:
            used.append(field)
        if timestamp is not None:
            used.append(TIME_FIELD)
        return Mapped(
            type=_TYPE_PREFIX + (event_type if event_type is not None else UNTYPED),
            known_type=event_type is not None,
            local_id=_webhook_id(raw),
            partition_key=_partition_key(source_key, body),
            subject=resource_id,
            time=provider_time(timestamp, TIME_FIELD) if timestamp is not None else None,
            data=event_data(
                resource=resource,
                action=action,
                resource_id=resource_id,
                resource_object=body.get(DATA_FIELD),
                extra=leftovers(body, used),
            ),
        )

    return map_event


# The vocabulary is each source's own: the placeholder stands for any value of its type field.
MAPPER = Mapper(bind=bind, known_types={"<type>": f"{_TYPE_PREFIX}<type>"})
