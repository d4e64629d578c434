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

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hookbus.config import SourceConfig
from hookbus.errors import ConfigError
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
from hookbus.request import NEVER_KEPT_HEADERS

FIELDS: Final = ("type", "id", "subject", "time", "partition_key")
DEFAULT_TYPE: Final = "received"
HEADER_PREFIX: Final = "header:"
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_POINTER_ESCAPE = re.compile(r"~(?![01])")
_ABSENT: Final = object()


@dataclass(frozen=True, slots=True)
class Locator:
    """Where one attribute comes from: a header (by lowercase name) or a JSON pointer."""

    label: str
    header: str | None = None
    tokens: tuple[str, ...] = ()

    def find(self, raw: RawEvent, document: Any) -> Any:
        """The value, or ``_ABSENT``."""
        if self.header is not None:
            return raw.headers.get(self.header, _ABSENT)
        value = document
        for segment in self.tokens:
            if isinstance(value, dict):
                value = value.get(segment, _ABSENT)
            elif isinstance(value, list) and segment.isdigit() and (segment == "0" or not segment.startswith("0")):
                index = int(segment)
                value = value[index] if index < len(value) else _ABSENT
            else:
                return _ABSENT
            if value is _ABSENT:
                return _ABSENT
        return value


@dataclass(frozen=True, slots=True)
class GenericMapping:
    """A source's checked ``mapping`` option; ``None`` where the default applies."""

    type: Locator | None = None
    id: Locator | None = None
    subject: Locator | None = None
    time: Locator | None = None
    partition_key: Locator | None = None

    def header_names(self) -> frozenset[str]:
        """The lowercase names of the headers this mapping reads."""
        locators = (self.type, self.id, self.subject, self.time, self.partition_key)
        return frozenset(locator.header for locator in locators if locator is not None and locator.header)


def _locator(spec: Any, field: str) -> Locator:
    if not isinstance(spec, str):
        raise ConfigError("must be a JSON pointer (/field) or header:<name>", key=f"mapping.{field}")
    if spec.startswith(HEADER_PREFIX):
        name = spec[len(HEADER_PREFIX) :].strip().lower()
        if not _HEADER_NAME.fullmatch(name):
            raise ConfigError(f"{name!r} is not a header name", key=f"mapping.{field}")
        if name in NEVER_KEPT_HEADERS:
            raise ConfigError(f"the gateway never keeps {name} (it carries credentials)", key=f"mapping.{field}")
        return Locator(label=f"header {name}", header=name)
    if not spec.startswith("/") or _POINTER_ESCAPE.search(spec):
        raise ConfigError(f"{spec!r} is not a JSON pointer (/field/sub) nor header:<name>", key=f"mapping.{field}")
    tokens = tuple(token.replace("~1", "/").replace("~0", "~") for token in spec[1:].split("/"))
    return Locator(label=spec, tokens=tokens)


def check_mapping_options(source: SourceConfig) -> GenericMapping:
    """The source's ``mapping`` option, checked; :class:`ConfigError` naming ``mapping.<field>``.

    Called at startup (the normalizer calls it when it is built), never per event.
    """
    raw = source.options.get("mapping")
    if raw is None:
        return GenericMapping()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"must be a mapping, not {type(raw).__name__}", source=source.name, key="mapping")
    try:
        unknown = sorted(str(name) for name in raw if name not in FIELDS)
        if unknown:
            raise ConfigError(f"unknown field; known: {', '.join(FIELDS)}", key=f"mapping.{unknown[0]}")
        return GenericMapping(**{field: _locator(raw[field], field) for field in FIELDS if raw.get(field) is not None})
    except ConfigError as exc:
        raise exc.located(source=source.name) from exc


def _text(locator: Locator, raw: RawEvent, document: Any) -> str:
    value = locator.find(raw, document)
    if value is _ABSENT or value is None:
        raise missing(locator.label)
    return id_text(value, locator.label)


def bind(source: SourceConfig) -> SourceMapper:
    mapping = check_mapping_options(source)
    name = source.name

    def map_event(raw: RawEvent) -> Mapped:
        document = parse_json(raw.body)
        action = _text(mapping.type, raw, document) if mapping.type is not None else DEFAULT_TYPE
        subject = _text(mapping.subject, raw, document) if mapping.subject is not None else None
        local_id = _text(mapping.id, raw, document) if mapping.id is not None else digest_id(raw.body)
        time = None
        if mapping.time is not None:
            value = mapping.time.find(raw, document)
            if value is _ABSENT or value is None:
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


def mapped_header_names(source: SourceConfig) -> frozenset[str]:
    """The headers (lowercase) a generic source's mapping reads, for the gateway to keep."""
    return check_mapping_options(source).header_names()


MAPPER = Mapper(bind=bind, known_types={DEFAULT_TYPE: "generic.<source>.received"})
