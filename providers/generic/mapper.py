"""Generic sources: any system that posts JSON (an Octolis-style configurable webhook).

Nothing is known of the body, so the source's ``mapping`` option says where the event's
attributes come from, each as a JSON pointer into the body (``/customer_id``) or a request
header (``header:X-Event-Type``; the gateway keeps the headers a mapping names)::

    mapping:
      type: header:X-Event-Type     # default: "received"
      id: /event_id                 # default: a digest of the raw body
      subject: /customer_id         # default: none
      time: /updated_at             # default: the received time
      partition_key: /customer_id   # default: the source name

Types are ``generic.<source>.<type>``: a generic source's vocabulary is its own, so two
systems that both say "updated" never share a type.
"""

from __future__ import annotations

from typing import Any, Final

from hookbus.config import SourceConfig
from hookbus.mapping import (
    Mapped,
    Mapper,
    SourceMapper,
    digest_id,
    event_data,
    id_text,
    missing,
    parse_json,
    provider_time,
)
from hookbus.rawevent import RawEvent

from .options import ABSENT, Locator, MappingOptions, options_of

DEFAULT_TYPE: Final = "received"


def _text(locator: Locator, raw: RawEvent, document: Any) -> str:
    value = locator.find(raw, document)
    if value is ABSENT or value is None:
        raise missing(locator.label)
    return id_text(value, locator.label)


def bind(source: SourceConfig) -> SourceMapper:
    mapping = options_of(source).mapping or MappingOptions()
    name = source.name

    def map_event(raw: RawEvent) -> Mapped:
        document = parse_json(raw.body)
        action = _text(mapping.type, raw, document) if mapping.type is not None else DEFAULT_TYPE
        subject = _text(mapping.subject, raw, document) if mapping.subject is not None else None
        local_id = _text(mapping.id, raw, document) if mapping.id is not None else digest_id(raw.body)
        time = None
        if mapping.time is not None:
            value = mapping.time.find(raw, document)
            if value is ABSENT or value is None:
                raise missing(mapping.time.label)
            time = provider_time(value, mapping.time.label)
        partition_key = (
            f"{name}:{_text(mapping.partition_key, raw, document)}" if mapping.partition_key is not None else name
        )
        return Mapped(
            type=f"generic.{name}.{action}",
            known_type=True,
            local_id=local_id,
            partition_key=partition_key,
            subject=subject,
            time=time,
            data=event_data(resource=name, action=action, resource_id=subject, resource_object=document),
        )

    return map_event


MAPPER = Mapper(bind=bind, known_types={DEFAULT_TYPE: "generic.<source>.received"})
