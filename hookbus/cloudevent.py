"""The canonical event: CloudEvents 1.0, and its Kafka protocol binding.

The normalizer writes these to the events topic; every sink reads them back. Binary mode
(the default) puts the attributes in ``ce_*`` headers and the data, as JSON, in the record
value; structured mode puts the whole event, as ``application/cloudevents+json``, in the
value. Either way the record key is the partition key, so one entity's events share a
partition and keep their order.

JSON is read and written exactly (:func:`decode_json`, :func:`encode_json`): a number keeps
its digits whatever its size (integers beyond 64 bits, decimals beyond a double's 17
digits), which orjson alone cannot do. orjson stays the path for every ordinary document;
the exact path (the standard library's parser with exact number hooks, and an iterative
writer) is taken only for the documents orjson would change or refuse.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

import orjson

from hookbus.errors import HookbusError

__all__ = [
    "JSON_CONTENT_TYPE",
    "SPEC_VERSION",
    "STRUCTURED_CONTENT_TYPE",
    "CloudEvent",
    "CloudEventError",
    "Mode",
    "decode_json",
    "encode_json",
    "is_unicode",
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


class JsonError(CloudEventError):
    """Bytes that are not JSON (a record that is ``not_a_cloudevent``), JSON nested deeper
    than allowed (``too_deeply_nested``), or a value JSON cannot hold (``not_json``).
    Messages name the position or the kind, never the content."""


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
        return encode_json(self.to_dict())

    def data_bytes(self) -> bytes:
        return encode_json(self.data)

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
        if by_name.get("content-type", "").startswith(STRUCTURED_CONTENT_TYPE):
            document = decode_json(value or b"")
            if not isinstance(document, dict):
                raise CloudEventError("a structured event must be a JSON object")
            return cls.from_dict(document)
        attributes: dict[str, Any] = {
            name[len("ce_") :]: text for name, text in by_name.items() if name.startswith("ce_")
        }
        for name in _BOOLEAN_EXTENSIONS & attributes.keys():
            attributes[name] = _BOOLEAN_TEXT.get(attributes[name], attributes[name])
        attributes["datacontenttype"] = by_name.get("content-type", JSON_CONTENT_TYPE)
        attributes["data"] = decode_json(value) if value else None
        return cls.from_dict(attributes)


@functools.lru_cache(maxsize=256)
def _is_extension_name(name: str) -> bool:
    # Cached: every event carries the same few extensions, and the check is a regex.
    return bool(_EXTENSION_NAME.fullmatch(name)) and name not in _CONTEXT_ATTRIBUTE_NAMES and name != "data"


def _header_text(value: ExtensionValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- exact JSON -------------------------------------------------------------------------
#
# orjson reads a number as a 64-bit integer or a double: an integer beyond 64 bits becomes
# a double (123456789012345678901234567890 -> 1.2345678901234568e+29), a decimal beyond a
# double's precision is rounded, one beyond its range is refused (orjson fails, and the
# exact path reads it), one below its range becomes 0.0. A number orjson changes has at
# least 16 digits (a double holds any 15) or a negative exponent of three digits, and it
# starts a token: it follows ":", "[", ",", whitespace or nothing. Only a document with
# that shape is read again by the exact path. A body up to _SCAN_BYTES is searched for the
# shape in C (one translate and a few finds); a larger one is mostly strings (a
# certificate), so its parsed tree is walked instead, and its bytes searched only if the
# tree holds a float at all.

_SCAN_BYTES: Final = 64 * 1024
# Every byte by class: digits -> "0", "e"/"E" -> "e", "-" kept, what may precede a number
# -> " ", "[" and "{" -> "[" (counted for the nesting bound), anything else -> "a"; "." and
# "+" are deleted, so 1234567890.1234567 reads as one run of digits.
_CLASSES: Final = bytes(
    ord("0")
    if chr(byte) in "0123456789"
    else ord("e")
    if chr(byte) in "eE"
    else byte
    if chr(byte) == "-"
    else ord(" ")
    if chr(byte) in ":, \t\r\n"
    else ord("[")
    if chr(byte) in "[{"
    else ord("a")
    for byte in range(256)
)
_DELETED: Final = b".+"
_LONG_DIGITS: Final = b"0" * 16
_LONG_NEGATIVE_EXPONENT: Final = b"0e-000"
_DASHES_CHECKED_ONE_BY_ONE: Final = 32
_NUMBER_CLASSES: Final = frozenset(b"0e-")
_BEFORE_A_NUMBER: Final = frozenset(b" [")
_END_OF_NUMBER: Final = re.compile(rb"[^0e-]")
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


def decode_json(raw: bytes, *, max_depth: int | None = None) -> Any:
    """``raw`` as JSON, every number exact: an integer as :class:`int` (a
    :class:`~decimal.Decimal` beyond Python's 4300-digit conversion limit), a decimal as
    :class:`float` when the float holds it exactly, else as :class:`~decimal.Decimal`.

    Refuses (:class:`JsonError`) what orjson refuses (``NaN``, lone surrogates, invalid
    UTF-8), and nesting beyond ``max_depth`` containers (``too_deeply_nested``).
    """
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # Cold path: orjson refuses numbers beyond a double's range and nesting beyond 1024;
        # the exact reader takes the first and names the second.
        document = _decode_exactly(raw)
        depth = _shape(document)[0] if max_depth is not None else 0
    else:
        if len(raw) <= _SCAN_BYTES:
            classes = raw.translate(_CLASSES, _DELETED)
            if _may_lose_digits(classes):
                document = _decode_exactly(raw)
            # Nesting deeper than max_depth needs more than max_depth openers.
            maybe_deep = max_depth is not None and classes.count(b"[") > max_depth
            depth = _shape(document)[0] if maybe_deep else 0
        else:
            depth, has_float = _shape(document)
            if has_float and _may_lose_digits(raw.translate(_CLASSES, _DELETED)):
                document = _decode_exactly(raw)
    if max_depth is not None and depth > max_depth:
        raise JsonError(f"the document is nested deeper than {max_depth} levels", reason="too_deeply_nested")
    return document


def _may_lose_digits(classes: bytes) -> bool:
    return _has_long_digits(classes) or _has_long_negative_exponent(classes)


def _starts_a_number(classes: bytes, at: int) -> bool:
    """Whether the run of number characters around ``at`` is a number token, not part of a
    string (an id like "5f8d6c9747120500116899e4")."""
    while at > 0 and classes[at - 1] in _NUMBER_CLASSES:
        at -= 1
    return at == 0 or classes[at - 1] in _BEFORE_A_NUMBER


def _has_long_digits(classes: bytes) -> bool:
    at = classes.find(_LONG_DIGITS)
    while at != -1:
        if _starts_a_number(classes, at):
            return True
        # Skip the whole run, so a long run of digits is walked once, not once per digit.
        end = _END_OF_NUMBER.search(classes, at)
        at = classes.find(_LONG_DIGITS, end.end()) if end is not None else -1
    return False


def _has_long_negative_exponent(classes: bytes) -> bool:
    # "0e-000" is slow to search for (its characters are frequent); "-" is fast (memchr) and
    # rare, so the first few dashes are checked one by one, and only a body full of them
    # (dates, UUIDs) is searched for the whole needle.
    at = classes.find(b"-")
    for _ in range(_DASHES_CHECKED_ONE_BY_ONE):
        if at == -1:
            return False
        if at >= 2 and classes.startswith(_LONG_NEGATIVE_EXPONENT, at - 2) and _starts_a_number(classes, at - 2):
            return True
        at = classes.find(b"-", at + 1)
    at = classes.find(_LONG_NEGATIVE_EXPONENT, max(at - 2, 0))
    while at != -1:
        if _starts_a_number(classes, at):
            return True
        at = classes.find(_LONG_NEGATIVE_EXPONENT, at + 1)
    return False


def _shape(document: Any) -> tuple[int, bool]:
    """How deep containers nest, and whether a float is among the values; iterative, so any
    depth is measured."""
    deepest, has_float = 0, isinstance(document, float)
    pending = [(document, 1)] if isinstance(document, dict | list) else []
    while pending:
        value, depth = pending.pop()
        deepest = max(deepest, depth)
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, dict | list):
                pending.append((child, depth + 1))
            elif isinstance(child, float):
                has_float = True
    return deepest, has_float


def _decode_exactly(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonError(f"the document is not UTF-8 (byte {exc.start})") from None
    try:
        document = json.loads(text, parse_int=_exact_int, parse_float=_exact_float, parse_constant=_no_constant)
    except RecursionError:
        # The standard library's parser stops at Python's recursion limit, cleanly.
        raise JsonError("the document is nested too deeply to read", reason="too_deeply_nested") from None
    except json.JSONDecodeError as exc:
        raise JsonError(f"the document is not JSON ({exc.msg} at char {exc.pos})") from None
    except ValueError:
        raise JsonError("the document is not JSON (NaN or Infinity)") from None
    if _SURROGATE_ESCAPE.search(text) is not None and _has_lone_surrogate(document):
        # orjson refuses them; the exact path must refuse the same documents. A lone
        # surrogate is not Unicode text: no UTF-8 header, key or sink could carry it.
        raise JsonError("the document is not JSON (a lone surrogate escape)")
    return document


def _exact_int(text: str) -> int | Decimal:
    try:
        return int(text)
    except ValueError:
        # Beyond sys.get_int_max_str_digits(): a Decimal keeps the digits without the limit.
        return Decimal(text)


def _exact_float(text: str) -> float | Decimal:
    number = float(text)
    if math.isfinite(number) and Decimal(repr(number)) == Decimal(text):
        return number
    return Decimal(text)


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _has_lone_surrogate(document: Any) -> bool:
    pending = [document]
    while pending:
        value = pending.pop()
        texts: list[Any] = []
        if isinstance(value, dict):
            texts = list(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        else:
            texts = [value]
        for text in texts:
            if isinstance(text, str) and not is_unicode(text):
                return True
    return False


def is_unicode(text: str) -> bool:
    """Whether ``text`` is Unicode text: no lone surrogate, so UTF-8 can carry it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Token(str):
    """Literal JSON text waiting on the writer's stack (keys, punctuation)."""


def encode_json(value: Any) -> bytes:
    """``value`` as JSON bytes: orjson's, byte for byte, whenever orjson can write it; the
    exact writer for what it cannot (integers beyond 64 bits, Decimals, nesting beyond
    orjson's 254 levels). :class:`JsonError` for a value JSON cannot hold."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _encode_exactly(value)


def _encode_exactly(value: Any) -> bytes:
    # Iterative, so no nesting depth raises RecursionError; output as orjson's (compact,
    # UTF-8, non-finite floats as null).
    out: list[str] = []
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if type(item) is _Token:
            out.append(item)
        elif isinstance(item, dict):
            pending.append(_Token("}"))
            entries = list(item.items())
            for index in range(len(entries) - 1, -1, -1):
                key, member = entries[index]
                if not isinstance(key, str):
                    raise JsonError(f"an object key is a {type(key).__name__}, not a string", reason="not_json")
                pending.append(member)
                pending.append(_Token(("," if index else "") + _string(key) + ":"))
            pending.append(_Token("{"))
        elif isinstance(item, list | tuple):
            pending.append(_Token("]"))
            for index in range(len(item) - 1, -1, -1):
                pending.append(item[index])
                if index:
                    pending.append(_Token(","))
            pending.append(_Token("["))
        else:
            out.append(_scalar(item))
    try:
        return "".join(out).encode("utf-8")
    except UnicodeEncodeError:
        raise JsonError("a string is not Unicode text (a lone surrogate)", reason="not_json") from None


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        try:
            return int.__repr__(value)
        except ValueError:
            # Beyond Python's int-to-text limit; Decimal converts without it.
            return str(Decimal(value))
    if isinstance(value, float):
        return float.__repr__(value) if math.isfinite(value) else "null"
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    raise JsonError(f"a {type(value).__name__} is not a JSON value", reason="not_json")
