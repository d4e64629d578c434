"""The canonical event: CloudEvents 1.0, and its Kafka protocol binding.

The normalizer writes these to the events topic; every sink reads them back. Binary mode
(the default) puts the attributes in ``ce_*`` headers and the data, as JSON, in the record
value; structured mode puts the whole event, as ``application/cloudevents+json``, in the
value. Either way the record key is the partition key, so one entity's events share a
partition and keep their order.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from hookbus.errors import HookbusError

__all__ = [
    "JSON_CONTENT_TYPE",
    "SPEC_VERSION",
    "STRUCTURED_CONTENT_TYPE",
    "CloudEvent",
    "CloudEventError",
    "Mode",
]

SPEC_VERSION = "1.0"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
JSON_CONTENT_TYPE = "application/json"
_EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
_CONTEXT_ATTRIBUTES = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema")
_CONTEXT_ATTRIBUTE_NAMES = frozenset(_CONTEXT_ATTRIBUTES)
# Binary mode: the attributes that travel as ce_* headers (datacontenttype is content-type).
_BINARY_HEADERS = tuple((name, "ce_" + name) for name in _CONTEXT_ATTRIBUTES if name != "datacontenttype")
_REQUIRED = ("specversion", "id", "source", "type")
# Binary mode carries every attribute as text. The canonical event's extensions that are not
# strings (schemas/cloudevent.json) are given their type back when a record is read, so an
# event reads back as it was written, in either mode.
_BOOLEAN_EXTENSIONS = frozenset({"knowntype"})
_BOOLEAN_TEXT = {"true": True, "false": False}

ExtensionValue = str | int | bool


class Mode(StrEnum):
    BINARY = "binary"
    STRUCTURED = "structured"


class CloudEventError(HookbusError):
    """A record is not a CloudEvent this binding can read."""

    reason = "not_a_cloudevent"


@dataclass(frozen=True, slots=True)
class CloudEvent:
    id: str
    source: str
    type: str
    data: Any
    subject: str | None = None
    time: str | None = None
    dataschema: str | None = None
    datacontenttype: str = JSON_CONTENT_TYPE
    extensions: Mapping[str, ExtensionValue] = field(default_factory=dict)
    specversion: str = SPEC_VERSION

    def __post_init__(self) -> None:
        for name in self.extensions:
            if not _is_extension_name(name):
                raise CloudEventError(f"{name!r} is not a valid CloudEvents extension name")

    @property
    def partition_key(self) -> str | None:
        key = self.extensions.get("partitionkey")
        return str(key) if key is not None else None

    def attributes(self) -> dict[str, ExtensionValue]:
        """Context attributes and extensions, without the data; absent optional ones left out."""
        attributes: dict[str, ExtensionValue] = {}
        for name in _CONTEXT_ATTRIBUTES:
            value = getattr(self, name)
            if value is not None:
                attributes[name] = value
        attributes.update(self.extensions)
        return attributes

    def to_dict(self) -> dict[str, Any]:
        """The JSON event format (structured mode)."""
        return {**self.attributes(), "data": self.data}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def data_bytes(self) -> bytes:
        return orjson.dumps(self.data)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> CloudEvent:
        missing = [name for name in _REQUIRED if not isinstance(document.get(name), str) or not document[name]]
        if missing:
            raise CloudEventError(f"missing attribute(s): {', '.join(missing)}")
        if document["specversion"] != SPEC_VERSION:
            raise CloudEventError(f"unsupported specversion {document['specversion']!r}")
        extensions = {
            name: value for name, value in document.items() if name not in _CONTEXT_ATTRIBUTE_NAMES and name != "data"
        }
        for name, value in extensions.items():
            if not isinstance(value, str | int | bool):
                raise CloudEventError(f"extension {name!r} is not a string, integer or boolean")
        return cls(
            id=document["id"],
            source=document["source"],
            type=document["type"],
            data=document.get("data"),
            subject=document.get("subject"),
            time=document.get("time"),
            dataschema=document.get("dataschema"),
            datacontenttype=document.get("datacontenttype", JSON_CONTENT_TYPE),
            extensions=extensions,
        )

    # --- Kafka protocol binding ----------------------------------------------------------

    def to_kafka(self, mode: Mode = Mode.BINARY) -> tuple[bytes | None, bytes, list[tuple[str, bytes]]]:
        """``(key, value, headers)`` for a Kafka record."""
        key = self.partition_key.encode("utf-8") if self.partition_key is not None else None
        if mode is Mode.STRUCTURED:
            return key, self.to_json(), [("content-type", STRUCTURED_CONTENT_TYPE.encode())]
        headers = [("content-type", self.datacontenttype.encode("utf-8"))]
        for name, header in _BINARY_HEADERS:
            value = getattr(self, name)
            if value is not None:
                headers.append((header, _header_text(value).encode("utf-8")))
        for name, value in self.extensions.items():
            headers.append(("ce_" + name, _header_text(value).encode("utf-8")))
        return key, self.data_bytes(), headers

    @classmethod
    def from_kafka(cls, headers: Sequence[tuple[str, bytes]] | None, value: bytes | None) -> CloudEvent:
        """Read a record written in either mode; :class:`CloudEventError` when it is not a CloudEvent."""
        by_name: dict[str, str] = {}
        for name, raw in headers or ():
            try:
                by_name[name.lower()] = raw.decode("utf-8") if raw is not None else ""
            except UnicodeDecodeError as exc:
                raise CloudEventError(f"header {name} is not UTF-8") from exc
        try:
            if by_name.get("content-type", "").startswith(STRUCTURED_CONTENT_TYPE):
                document = orjson.loads(value or b"")
                if not isinstance(document, dict):
                    raise CloudEventError("a structured event must be a JSON object")
                return cls.from_dict(document)
            attributes: dict[str, Any] = {
                name[len("ce_") :]: text for name, text in by_name.items() if name.startswith("ce_")
            }
            for name in _BOOLEAN_EXTENSIONS & attributes.keys():
                attributes[name] = _BOOLEAN_TEXT.get(attributes[name], attributes[name])
            attributes["datacontenttype"] = by_name.get("content-type", JSON_CONTENT_TYPE)
            attributes["data"] = orjson.loads(value) if value else None
            return cls.from_dict(attributes)
        except orjson.JSONDecodeError as exc:
            raise CloudEventError(f"the record value is not JSON: {exc}") from exc


@functools.lru_cache(maxsize=256)
def _is_extension_name(name: str) -> bool:
    # Cached: every event carries the same few extensions, and the check is a regex.
    return bool(_EXTENSION_NAME.fullmatch(name)) and name not in _CONTEXT_ATTRIBUTE_NAMES and name != "data"


def _header_text(value: ExtensionValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
