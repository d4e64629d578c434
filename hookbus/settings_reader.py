"""Reading a configuration section into a settings dataclass, by field name and type.

A field's type names its converter (``str``, ``int``, ``float``, ``bool``, ``tuple[str, ...]``,
``Secret``, ``Mapping[str, str]``, and ``X | None``); ``field(metadata={PARSE: fn})`` gives
one for anything else. A bad section fails at startup with a
:class:`~hookbus.errors.ConfigError` keyed ``<prefix>.<field>``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from hookbus.config import (
    Secret,
    as_bool,
    as_float,
    as_int,
    as_secret,
    as_str,
    as_str_list,
    as_str_mapping,
)
from hookbus.errors import ConfigError

__all__ = ["PARSE", "as_choice", "as_identifier", "parse_settings"]

PARSE = "parse"
"""Key of ``dataclasses.field(metadata=...)`` naming a ``(value, key) -> value`` converter."""

_T = TypeVar("_T")


def parse_settings(settings_type: type[_T], section: Mapping[str, Any], *, prefix: str) -> _T:
    """Build ``settings_type`` from ``section``: unknown keys, missing keys and bad values are
    :class:`ConfigError` keyed ``<prefix>.<field>``. A ``ConfigError`` raised by the class
    itself (``__post_init__``) with ``key=<field>`` is keyed the same way."""
    if not dataclasses.is_dataclass(settings_type):
        raise TypeError(f"{settings_type.__name__} is not a dataclass")
    fields = {field.name: field for field in dataclasses.fields(settings_type) if field.init}
    for key in section:
        if key not in fields:
            raise ConfigError("unknown key", key=f"{prefix}.{key}")
    hints = typing.get_type_hints(settings_type)
    values: dict[str, Any] = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}"
        value = section.get(name)
        if value is None:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError("is required", key=key)
            continue
        convert = field.metadata.get(PARSE) or _converter(hints[name], key)
        values[name] = convert(value, key)
    try:
        return settings_type(**values)
    except ConfigError as exc:
        located = exc.key if exc.key and exc.key.startswith(prefix) else f"{prefix}.{exc.key or ''}".rstrip(".")
        raise ConfigError(exc.detail, key=located) from exc


_CONVERTERS: dict[Any, Callable[[Any, str], Any]] = {
    str: as_str,
    int: as_int,
    float: as_float,
    bool: as_bool,
    Secret: as_secret,
    tuple[str, ...]: as_str_list,
    Mapping[str, str]: as_str_mapping,
    dict[str, str]: as_str_mapping,
}


def _converter(hint: Any, key: str) -> Callable[[Any, str], Any]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)]
        if len(kinds) == 1:
            hint = kinds[0]
    convert = _CONVERTERS.get(hint)
    if convert is None:
        raise TypeError(f"{key}: no converter for {hint!r}; give field(metadata={{'parse': ...}})")
    return convert


def as_choice(*choices: str) -> Callable[[Any, str], str]:
    """A converter accepting one of ``choices``."""

    def convert(value: Any, key: str) -> str:
        text = as_str(value, key)
        if text not in choices:
            raise ConfigError(f"must be one of {', '.join(choices)}, not {text!r}", key=key)
        return text

    return convert


def as_identifier(value: Any, key: str) -> str:
    """A plain SQL identifier (table names are put into statements, so nothing else is allowed)."""
    text = as_str(value, key)
    if not text.isascii() or not text.replace("_", "a").isalnum() or text[0].isdigit() or len(text) > 63:
        raise ConfigError("must be letters, digits and '_' (at most 63, not starting with a digit)", key=key)
    return text.lower()
