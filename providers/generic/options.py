"""A generic source's own keys, ``signature`` and ``mapping``, as the configuration reader
reads them (:func:`hookbus.settings.parse_settings`): every error is a
:class:`~hookbus.errors.ConfigError` keyed ``signature.<field>`` or ``mapping.<field>``,
at startup, and the file's JSON Schema describes them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from hookbus.config import SourceConfig
from hookbus.errors import ConfigError
from hookbus.request import NEVER_KEPT_HEADERS
from hookbus.settings import PARSE, SCHEMA, as_choice, parse_settings
from hookbus.verifying import per_source

ALGORITHMS: Final = ("sha256", "sha512", "sha1")
ENCODINGS: Final = ("hex", "base64")
TIMESTAMP_UNITS: Final[Mapping[str, int]] = {"s": 1, "ms": 1000}
HEADER_PREFIX: Final = "header:"
ABSENT: Final = object()
"""What :meth:`Locator.find` gives for a value the request does not have."""

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_POINTER_ESCAPE = re.compile(r"~(?![01])")
_LOCATOR_SCHEMA: Final = {"type": "string", "pattern": r"^(/.*|header:.+)$"}


def _text(value: Any, key: str) -> str:
    # Strict: a number where a header name or a prefix belongs is a mistake, not text.
    if not isinstance(value, str):
        raise ConfigError(f"must be a string, not {type(value).__name__}", key=key)
    return value


def _header_name(value: Any, key: str) -> str:
    text = _text(value, key)
    if not _HEADER_NAME.fullmatch(text):
        raise ConfigError(f"{text!r} is not an HTTP header name", key=key)
    return text


@dataclass(frozen=True, slots=True)
class SignatureOptions:
    """``signature``: an HMAC in a header of the user's choosing.

    Without ``timestamp_header`` the HMAC covers the raw body; with it, the timestamp
    header's value, a dot and the raw body, and a stale or future timestamp is refused.
    """

    header: str = field(metadata={PARSE: _header_name})
    algorithm: str = field(default=ALGORITHMS[0], metadata={PARSE: as_choice(*ALGORITHMS)})
    encoding: str = field(default=ENCODINGS[0], metadata={PARSE: as_choice(*ENCODINGS)})
    """``hex`` (any case) or ``base64``."""
    prefix: str = field(default="", metadata={PARSE: _text})
    """Text before the signature in the header, such as ``sha256=``."""
    timestamp_header: str | None = field(default=None, metadata={PARSE: _header_name})
    timestamp_unit: str | None = field(default=None, metadata={PARSE: as_choice(*TIMESTAMP_UNITS)})
    """``s`` (the default) or ``ms``; only with ``timestamp_header``."""

    def __post_init__(self) -> None:
        if self.timestamp_header is not None and self.timestamp_header.lower() == self.header.lower():
            raise ConfigError("must differ from signature.header", key="timestamp_header")
        if self.timestamp_unit is not None and self.timestamp_header is None:
            raise ConfigError("needs signature.timestamp_header", key="timestamp_unit")

    @property
    def per_second(self) -> int:
        return TIMESTAMP_UNITS[self.timestamp_unit or "s"]


@dataclass(frozen=True, slots=True)
class Locator:
    """Where one attribute comes from: a header (by lowercase name) or a JSON pointer."""

    label: str
    header: str | None = None
    tokens: tuple[str, ...] = ()

    def find(self, headers: Mapping[str, str], document: Any) -> Any:
        """The value, or :data:`ABSENT`: ``headers`` are the request's (a raw event's kept
        headers, by lowercase name, or the gateway's case-insensitive ones)."""
        if self.header is not None:
            return headers.get(self.header, ABSENT)
        value = document
        for segment in self.tokens:
            if isinstance(value, dict):
                value = value.get(segment, ABSENT)
            elif isinstance(value, list) and segment.isdigit() and (segment == "0" or not segment.startswith("0")):
                index = int(segment)
                value = value[index] if index < len(value) else ABSENT
            else:
                return ABSENT
            if value is ABSENT:
                return ABSENT
        return value


def as_locator(value: Any, key: str) -> Locator:
    """A JSON pointer into the body (``/customer_id``) or a request header (``header:X-Kind``)."""
    if not isinstance(value, str):
        raise ConfigError("must be a JSON pointer (/field) or header:<name>", key=key)
    if value.startswith(HEADER_PREFIX):
        name = value[len(HEADER_PREFIX) :].strip().lower()
        if not _HEADER_NAME.fullmatch(name):
            raise ConfigError(f"{name!r} is not a header name", key=key)
        if name in NEVER_KEPT_HEADERS:
            raise ConfigError(f"the gateway never keeps {name} (it carries credentials)", key=key)
        return Locator(label=f"header {name}", header=name)
    if not value.startswith("/") or _POINTER_ESCAPE.search(value):
        raise ConfigError(f"{value!r} is not a JSON pointer (/field/sub) nor header:<name>", key=key)
    tokens = tuple(token.replace("~1", "/").replace("~0", "~") for token in value[1:].split("/"))
    return Locator(label=value, tokens=tokens)


_LOCATOR_METADATA: Final = {PARSE: as_locator, SCHEMA: _LOCATOR_SCHEMA}


@dataclass(frozen=True, slots=True)
class MappingOptions:
    """``mapping``: where the event's attributes come from; each a JSON pointer into the
    body or ``header:<name>``, and the default where absent."""

    type: Locator | None = field(default=None, metadata=_LOCATOR_METADATA)
    """Default: ``received``."""
    id: Locator | None = field(default=None, metadata=_LOCATOR_METADATA)
    """Default: a digest of the raw body."""
    subject: Locator | None = field(default=None, metadata=_LOCATOR_METADATA)
    """Default: none."""
    time: Locator | None = field(default=None, metadata=_LOCATOR_METADATA)
    """Default: the received time."""
    partition_key: Locator | None = field(default=None, metadata=_LOCATOR_METADATA)
    """Default: the source name."""

    def header_names(self) -> frozenset[str]:
        """The lowercase names of the headers this mapping reads."""
        locators = (self.type, self.id, self.subject, self.time, self.partition_key)
        return frozenset(locator.header for locator in locators if locator is not None and locator.header)


@dataclass(frozen=True, slots=True)
class GenericOptions:
    signature: SignatureOptions | None = None
    mapping: MappingOptions | None = None


@per_source
def options_of(source: SourceConfig) -> GenericOptions:
    """The source's options, read once per source (the reader also checks them when the file is loaded)."""
    try:
        return parse_settings(GenericOptions, source.options)
    except ConfigError as exc:
        raise exc.located(source=source.name) from exc
