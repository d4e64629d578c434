"""Raw record keys: the entity an accepted request is about, read at the gateway, cheaply.

The raw topic is keyed so that one entity's requests share a partition (and so keep their
order) while different entities spread over every partition. A provider that can tell the
entity from the request gives its :class:`~hookbus.provider.Provider` a ``raw_key``: bound
once per source, it returns the same entity text its mapper gives as the event's partition
key, or ``None`` when it cannot tell (no entity, a body that does not parse, a member too
large to read), and the gateway then keys by the source, as for a provider without one.

Reading a key must cost little next to receiving the request, whatever the body's size:
:func:`top_level_members` parses a small body whole (faster than anything else), and does
not parse a large one: it steps over the top-level object and decodes only the members asked
for. A string value is stepped over by searching for its closing quote (a 4 MB base64
certificate costs one byte search), a nested value by its brackets, at most
:data:`MAX_SCAN_TOKENS` of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from hookbus.cloudevent import JsonError, decode_json
from hookbus.config import SourceConfig
from hookbus.errors import HookbusError
from hookbus.mapping import JsonObject, MappingError

__all__ = [
    "MAX_MEMBER_BYTES",
    "MAX_SCAN_TOKENS",
    "WHOLE_PARSE_MAX_BYTES",
    "RawKey",
    "RawKeyBinder",
    "member_key",
    "top_level_members",
]

RawKey = Callable[[bytes, Mapping[str, str]], str | None]
"""One source's key reader: ``(body, headers) -> entity | None`` of a verified request."""
RawKeyBinder = Callable[[SourceConfig], RawKey]
"""Binds a provider's key reader to one source (its options), once, at startup."""

# A member asked for is decoded only up to this size (about 2 ms of decoding at most): ids
# and type names are far smaller, and an object holding one (OfficeRnD's ``data``) nearly
# always is. A larger one keys its request by the source (docs/operations.md).
MAX_MEMBER_BYTES: Final = 1024 * 1024
# A body this small is parsed whole: faster than stepping over it field by field (a 200-byte
# body parses in about 2 µs, its scan takes some 25 µs); the scan wins from a few tens of KB.
WHOLE_PARSE_MAX_BYTES: Final = 16 * 1024
# Brackets and strings stepped over inside nested values before giving up: bounds the work
# a body built of many tiny containers can cause.
MAX_SCAN_TOKENS: Final = 10_000

_WHITESPACE: Final = b" \t\r\n"
_NESTED_TOKEN: Final = re.compile(rb'["{}\[\]]')
_SCALAR_END: Final = re.compile(rb"[,}\]\s]")
_QUOTE: Final = ord('"')
_BACKSLASH: Final = ord("\\")
_OPENERS: Final = b"{["
_UNSCANNABLE: Final = "the body is not a JSON object within the scan's bounds"


def member_key(names: Collection[str], entity: Callable[[JsonObject], str]) -> RawKeyBinder:
    """The key reader of a provider whose entity is named by top-level members of its JSON
    body: ``entity`` is the mapper's own partition-key function, given those members (it
    raises :class:`~hookbus.mapping.MappingError` when they do not name an entity)."""

    def read(body: bytes, headers: Mapping[str, str]) -> str | None:
        members = top_level_members(body, names)
        if members is None:
            return None
        try:
            return entity(members)
        except MappingError:
            return None

    def bind(source: SourceConfig) -> RawKey:
        return read

    return bind


class _Unscannable(HookbusError):
    """The body is not a JSON object this scanner can step over within its bounds (never
    escapes :func:`top_level_members`, which answers ``None``)."""

    reason = "unscannable_body"


def top_level_members(body: bytes, names: Collection[str]) -> dict[str, Any] | None:
    """The members ``names`` of the body's top-level JSON object, decoded as the mappers
    decode them (:func:`~hookbus.cloudevent.decode_json`, numbers exact); a name the object
    lacks is absent. ``None`` when the body is not a JSON object, a member asked for is
    larger than :data:`MAX_MEMBER_BYTES`, or the scan passes its bounds. A name sent twice
    gives its last value, as a full parse does."""
    try:
        if len(body) <= WHOLE_PARSE_MAX_BYTES:
            return _parsed(body, names)
        return _scan(body, frozenset(names))
    except (_Unscannable, IndexError, JsonError):
        return None


def _parsed(body: bytes, names: Collection[str]) -> dict[str, Any] | None:
    document = decode_json(body)
    if not isinstance(document, dict):
        return None
    return {name: document[name] for name in names if name in document}


def _scan(body: bytes, names: frozenset[str]) -> dict[str, Any] | None:
    found: dict[str, Any] = {}
    position = _skip_whitespace(body, 0)
    if body[position] != ord("{"):
        raise _Unscannable(_UNSCANNABLE)
    position = _skip_whitespace(body, position + 1)
    if body[position] == ord("}"):
        return found
    while True:
        if body[position] != _QUOTE:
            raise _Unscannable(_UNSCANNABLE)
        name_end = _string_end(body, position)
        name = decode_json(body[position:name_end])
        position = _skip_whitespace(body, name_end)
        if body[position] != ord(":"):
            raise _Unscannable(_UNSCANNABLE)
        value_start = _skip_whitespace(body, position + 1)
        value_end = _value_end(body, value_start)
        if name in names:
            if value_end - value_start > MAX_MEMBER_BYTES:
                return None
            found[name] = decode_json(body[value_start:value_end])
        position = _skip_whitespace(body, value_end)
        if body[position] == ord("}"):
            return found
        if body[position] != ord(","):
            raise _Unscannable(_UNSCANNABLE)
        position = _skip_whitespace(body, position + 1)


def _skip_whitespace(body: bytes, position: int) -> int:
    while body[position] in _WHITESPACE:
        position += 1
    return position


def _string_end(body: bytes, opening: int) -> int:
    """Just past the quote that closes the string opened at ``opening``."""
    search_from = opening + 1
    while True:
        closing = body.find(b'"', search_from)
        if closing < 0:
            raise _Unscannable(_UNSCANNABLE)
        escapes = closing
        while body[escapes - 1] == _BACKSLASH:
            escapes -= 1
        # An even run of backslashes escapes itself, not the quote.
        if (closing - escapes) % 2 == 0:
            return closing + 1
        search_from = closing + 1


def _value_end(body: bytes, start: int) -> int:
    first = body[start]
    if first == _QUOTE:
        return _string_end(body, start)
    if first in _OPENERS:
        return _nested_end(body, start)
    found = _SCALAR_END.search(body, start)
    if found is None or found.start() == start:
        raise _Unscannable(_UNSCANNABLE)
    return found.start()


def _nested_end(body: bytes, start: int) -> int:
    depth = 0
    position = start
    for _ in range(MAX_SCAN_TOKENS):
        found = _NESTED_TOKEN.search(body, position)
        if found is None:
            raise _Unscannable(_UNSCANNABLE)
        token = found.start()
        if body[token] == _QUOTE:
            position = _string_end(body, token)
            continue
        depth += 1 if body[token] in _OPENERS else -1
        position = token + 1
        if depth == 0:
            return position
    raise _Unscannable(_UNSCANNABLE)
