"""The one reader of the configuration file: a section is a frozen dataclass, declared once.

A section's keys are the fields of its dataclass; each value is read by its type hint:

- ``str``, ``int``, ``float``, ``bool``: numbers are never negative; ``bool`` also takes
  ``"true"``, ``"yes"``, ``"1"`` and their opposites;
- ``Secret``: a non-empty string whose repr hides it;
- ``tuple[str, ...]``: a list, or one string standing for a list of one;
- ``tuple[Secret, ...]``: entries that expand to ``""`` are left out (rotation);
- ``tuple[IPNetwork, ...]``: addresses or CIDRs, IPv4 and IPv6;
- ``Mapping[str, str]``: a mapping of strings;
- ``Mapping[str, Any]``: a section its own service reads later, kept as written;
- an ``Enum``: one of its values, in any case;
- a dataclass, or ``tuple[<dataclass>, ...]``: nested sections, their keys named
  ``<key>.<field>`` and ``<key>[<index>].<field>``;
- ``X | None``: ``X``, or absent.

``dataclasses.field(metadata=...)`` says the rest: :data:`PARSE` (or :data:`READ`) names
a converter for a value no hint describes, :data:`MINIMUM` and :data:`EXCLUSIVE_MINIMUM`
bound a number, :data:`DEFAULT_FROM` computes a default from the keys read before,
:data:`DESCRIPTION` documents the key in the schema (an attribute docstring does too),
:data:`SCHEMA` gives the schema of a converted value and :data:`NOT_IN_FILE` marks a field
the code fills in.

Unknown keys are refused before anything is read, so a misspelt key is named as such and
not as a missing one. ``${VAR}``, ``${VAR:-default}`` and ``${file:/path}`` are expanded
once, at the leaf, just before the value is converted. A check that spans fields belongs in
the dataclass's ``__post_init__``, raising ``ConfigError(key=<field>)``; the reader prefixes
the key like any other. Every error is a :class:`~hookbus.errors.ConfigError` keyed
``<prefix>.<field>``.

:func:`settings_schema` describes the same dataclass as JSON Schema, for editors.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import ipaddress
import itertools
import math
import os
import re
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hookbus.errors import ConfigError

__all__ = [
    "DEFAULT_FROM",
    "DESCRIPTION",
    "EXCLUSIVE_MINIMUM",
    "JSON_SCHEMA_DIALECT",
    "MINIMUM",
    "NOT_IN_FILE",
    "PARSE",
    "READ",
    "REFERENCE_PATTERN",
    "SCHEMA",
    "Choice",
    "Converter",
    "IPNetwork",
    "Secret",
    "as_bool",
    "as_choice",
    "as_float",
    "as_int",
    "as_mapping",
    "as_networks",
    "as_secret",
    "as_secrets",
    "as_str",
    "as_str_list",
    "as_str_mapping",
    "attribute_docstrings",
    "expand_leaves",
    "expand_references",
    "file_fields",
    "parse_settings",
    "read_field",
    "settings_schema",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Converter = Callable[[Any, str], Any]
"""``(value, key) -> value``: checks and converts one value, raising :class:`ConfigError` keyed ``key``."""

PARSE = "parse"
"""Key of ``dataclasses.field(metadata=...)`` naming a :data:`Converter` for the field's value,
references expanded; the type hint still gives its schema unless :data:`SCHEMA` does."""
READ = "read"
"""Like :data:`PARSE`, but the converter gets the value as written: for a value made of
sections it reads itself with :func:`parse_settings`, which expands their leaves."""
DESCRIPTION = "description"
"""Metadata key: what the key means, for the schema (an attribute docstring does the same)."""
MINIMUM = "minimum"
"""Metadata key: the smallest number allowed."""
EXCLUSIVE_MINIMUM = "exclusive_minimum"
"""Metadata key: the number must be greater than this."""
DEFAULT_FROM = "default_from"
"""Metadata key: ``(values) -> default`` when the key is absent, given the values read from
the keys declared before it."""
SCHEMA = "schema"
"""Metadata key: the JSON Schema of the value, for a :data:`PARSE` converter its hint does not describe."""
NOT_IN_FILE = "not_in_file"
"""Metadata key: ``True`` for a field the code fills in; the file cannot set it."""

REFERENCE_PATTERN = r"\$\{[^}]*\}"
"""A value containing a reference is a string until it is expanded, whatever the key's type."""

_REFERENCE = re.compile(REFERENCE_PATTERN)
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret value. Its repr never shows it, so it cannot leak through a log or a traceback."""

    value: bytes

    @classmethod
    def of(cls, text: str) -> Secret:
        return cls(text.encode("utf-8"))

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


# --- references -------------------------------------------------------------------------


def expand_references(text: str, *, key: str | None = None) -> str:
    """Replace ``${VAR}``, ``${VAR:-default}`` and ``${file:/path}`` in ``text``."""

    def replace(match: re.Match[str]) -> str:
        reference = match.group(0)[2:-1]
        if reference.startswith("file:"):
            path = reference[len("file:") :]
            try:
                return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"cannot read {path}: {exc.strerror}", key=key) from exc
        name, has_default, default = reference.partition(":-")
        if not _VARIABLE_NAME.fullmatch(name):
            raise ConfigError(f"${{{reference}}} is not a variable reference", key=key)
        value = os.environ.get(name)
        if value is None:
            if has_default:
                return default
            raise ConfigError(f"environment variable {name} is not set", key=key)
        return value

    return _REFERENCE.sub(replace, text)


def expand_leaves(value: Any, key: str | None) -> Any:
    """``value`` with the references in every string inside it expanded; errors are keyed ``key``."""
    if isinstance(value, str):
        return expand_references(value, key=key)
    if isinstance(value, list):
        return [expand_leaves(item, key) for item in value]
    if isinstance(value, dict):
        return {name: expand_leaves(item, key if key is not None else str(name)) for name, item in value.items()}
    return value


# --- converters -------------------------------------------------------------------------


def as_str(value: Any, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"must be a string, not {type(value).__name__}", key=key)
    return str(value)


def as_int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError("must be a whole number", key=key)
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"must be a whole number, not {value!r}", key=key) from exc
    if number < 0:
        raise ConfigError("must not be negative", key=key)
    return number


def as_float(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError("must be a number", key=key)
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"must be a number, not {value!r}", key=key) from exc
    if number < 0 or math.isnan(number):
        raise ConfigError("must be a non-negative number", key=key)
    return number


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "1", "0"}:
        return value.lower() in {"true", "yes", "1"}
    raise ConfigError(f"must be true or false, not {value!r}", key=key)


def as_str_list(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"must be a list, not {type(value).__name__}", key=key)
    return tuple(as_str(item, key) for item in value)


def as_networks(value: Any, key: str) -> tuple[IPNetwork, ...]:
    networks = []
    for item in as_str_list(value, key):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(f"{item!r} is not an IP address or CIDR", key=key) from exc
    return tuple(networks)


def as_secret(value: Any, key: str) -> Secret:
    text = as_str(value, key)
    if not text:
        raise ConfigError("is empty", key=key)
    return Secret.of(text)


def as_secrets(value: Any, key: str) -> tuple[Secret, ...]:
    # An entry that expands to "" is left out, so `${KEY_OLD:-}` can stand in the list
    # between rotations; a list with no secret at all is caught by the caller.
    return tuple(Secret.of(text) for text in as_str_list(value, key) if text)


def as_str_mapping(value: Any, key: str) -> dict[str, str]:
    return {as_str(name, key): as_str(item, key) for name, item in as_mapping(value, key).items()}


def as_mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping, not {type(value).__name__}", key=key)
    return dict(value)


@dataclass(frozen=True, slots=True)
class Choice:
    """A converter accepting one of ``choices``; the schema lists them."""

    choices: tuple[str, ...]

    def __call__(self, value: Any, key: str) -> str:
        text = as_str(value, key)
        if text not in self.choices:
            raise ConfigError(f"must be one of {', '.join(self.choices)}, not {text!r}", key=key)
        return text


def as_choice(*choices: str) -> Choice:
    """A converter accepting one of ``choices``."""
    return Choice(choices)


def _enum_converter(kind: type[enum.Enum]) -> Converter:
    by_value = {str(member.value).lower(): member for member in kind}
    *others, last = by_value

    def convert(value: Any, key: str) -> enum.Enum:
        text = as_str(value, key).lower()
        member = by_value.get(text)
        if member is None:
            alternatives = f"{', '.join(others)} or {last}" if others else last
            raise ConfigError(f"must be {alternatives}, not {text!r}", key=key)
        return member

    return convert


# --- what each type hint reads ------------------------------------------------------------

_STRING: dict[str, Any] = {"type": ["string", "number"]}
"""What :func:`as_str` takes: numbers are read as their text."""
_STRINGS: dict[str, Any] = {"anyOf": [{"type": "array", "items": _STRING}, {"type": "string"}]}

_LEAVES: dict[Any, tuple[Converter, dict[str, Any]]] = {
    str: (as_str, _STRING),
    int: (as_int, {"type": "integer", "minimum": 0}),
    float: (as_float, {"type": "number", "minimum": 0}),
    bool: (as_bool, {"type": "boolean"}),
    Secret: (as_secret, {"type": ["string", "number"], "minLength": 1}),
    tuple[str, ...]: (as_str_list, _STRINGS),
    tuple[Secret, ...]: (as_secrets, _STRINGS),
    tuple[IPNetwork, ...]: (as_networks, _STRINGS),
    Mapping[str, str]: (as_str_mapping, {"type": "object", "additionalProperties": _STRING}),
    dict[str, str]: (as_str_mapping, {"type": "object", "additionalProperties": _STRING}),
}


@dataclass(frozen=True, slots=True)
class _Kind:
    """How a type hint is read from the file, and its JSON Schema."""

    read: Converter
    """Gets the value as written."""
    schema: Callable[[], dict[str, Any]]
    leaf: bool
    """The value is expanded as a whole, so a reference may stand for all of it."""


def _expanded(convert: Converter) -> Converter:
    return lambda value, key: convert(expand_leaves(value, key), key)


def _leaf(convert: Converter, schema: dict[str, Any]) -> _Kind:
    return _Kind(_expanded(convert), lambda: schema, leaf=True)


def _kind(hint: Any) -> _Kind | None:
    hint = _without_none(hint)
    if hint in _LEAVES:
        return _leaf(*_LEAVES[hint])
    if hint == Mapping[str, Any]:
        # A section its own service reads, and expands, when it starts.
        return _Kind(as_mapping, lambda: {"type": "object"}, leaf=False)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _leaf(_enum_converter(hint), {"enum": [str(member.value) for member in hint]})
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _Kind(
            lambda value, key: parse_settings(hint, value, prefix=key), lambda: settings_schema(hint), leaf=False
        )
    item = _tuple_item(hint)
    if isinstance(item, type) and dataclasses.is_dataclass(item):
        return _Kind(
            lambda value, key: _parse_each(item, value, key),
            lambda: {"type": "array", "items": settings_schema(item)},
            leaf=False,
        )
    return None


def _without_none(hint: Any) -> Any:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [kind for kind in typing.get_args(hint) if kind is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
    return hint


def _tuple_item(hint: Any) -> Any:
    arguments = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and len(arguments) == 2 and arguments[1] is Ellipsis:
        return arguments[0]
    return None


def _parse_each(item_type: type[_T], value: Any, key: str) -> tuple[_T, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"must be a list, not {type(value).__name__}", key=key)
    return tuple(parse_settings(item_type, item, prefix=f"{key}[{index}]") for index, item in enumerate(value))


# --- reading ------------------------------------------------------------------------------


def file_fields(settings_type: type[Any]) -> dict[str, dataclasses.Field[Any]]:
    """The fields of ``settings_type`` that are keys of the file, by name."""
    if not dataclasses.is_dataclass(settings_type):
        raise TypeError(f"{settings_type.__name__} is not a dataclass")
    return {
        field.name: field
        for field in dataclasses.fields(settings_type)
        if field.init and not field.metadata.get(NOT_IN_FILE)
    }


def parse_settings(settings_type: type[_T], section: Any, *, prefix: str = "") -> _T:
    """Build ``settings_type`` from the mapping ``section``, as written in the file.

    Unknown keys, missing keys and bad values are :class:`ConfigError` keyed
    ``<prefix>.<field>`` (just ``<field>`` without a prefix). A ``ConfigError`` raised by the
    class itself (``__post_init__``) with ``key=<field>`` is keyed the same way.
    """
    fields = file_fields(settings_type)
    if not isinstance(section, Mapping):
        detail = f"must be a mapping, not {type(section).__name__}"
        raise ConfigError(detail, key=prefix or None)
    unknown = sorted(str(key) for key in section if key not in fields)
    if unknown:
        raise ConfigError("unknown key", key=_join(prefix, unknown[0]))
    hints = typing.get_type_hints(settings_type)
    values: dict[str, Any] = {}
    for name, field in fields.items():
        value = section.get(name)
        if value is not None:
            values[name] = _reader(field, hints[name])(value, _join(prefix, name))
        elif DEFAULT_FROM in field.metadata:
            values[name] = field.metadata[DEFAULT_FROM](values)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError("is required", key=_join(prefix, name))
    try:
        return settings_type(**values)
    except ConfigError as exc:
        raise ConfigError(exc.detail, file=exc.file, source=exc.source, key=_within(prefix, exc.key)) from exc


def read_field(settings_type: type[Any], name: str, section: Mapping[str, Any], *, prefix: str = "") -> Any:
    """The one key ``name`` of ``section`` as :func:`parse_settings` reads it, before the rest:
    for a section whose other keys depend on this one (a source's provider)."""
    field = file_fields(settings_type)[name]
    key = _join(prefix, name)
    value = section.get(name)
    if value is None:
        raise ConfigError("is required", key=key)
    return _reader(field, typing.get_type_hints(settings_type)[name])(value, key)


def _reader(field: dataclasses.Field[Any], hint: Any) -> Converter:
    if READ in field.metadata:
        read: Converter = field.metadata[READ]
    elif PARSE in field.metadata:
        read = _expanded(field.metadata[PARSE])
    else:
        kind = _kind(hint)
        if kind is None:
            raise TypeError(f"{field.name}: no reader for {hint!r}; give field(metadata={{'parse': ...}})")
        read = kind.read
    bounds = _bounds(field)
    if not bounds:
        return read

    def read_within_bounds(value: Any, key: str) -> Any:
        number = read(value, key)
        for limit, allows, words in bounds.values():
            if not allows(number, limit):
                raise ConfigError(f"must be {words} {limit}", key=key)
        return number

    return read_within_bounds


_BOUNDS: Mapping[str, tuple[str, Callable[[Any, Any], bool], str]] = {
    MINIMUM: ("minimum", lambda number, limit: number >= limit, "at least"),
    EXCLUSIVE_MINIMUM: ("exclusiveMinimum", lambda number, limit: number > limit, "greater than"),
}


def _bounds(field: dataclasses.Field[Any]) -> dict[str, tuple[Any, Callable[[Any, Any], bool], str]]:
    """The field's bounds by JSON Schema keyword: the limit, the test and how to say it."""
    return {
        keyword: (field.metadata[name], allows, words)
        for name, (keyword, allows, words) in _BOUNDS.items()
        if name in field.metadata
    }


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _within(prefix: str, key: str | None) -> str | None:
    """A key raised by the class itself, made a key of the file."""
    if key is None:
        return prefix or None
    if not prefix or key == prefix or key.startswith((f"{prefix}.", f"{prefix}[")):
        return key
    return f"{prefix}.{key}"


# --- JSON Schema --------------------------------------------------------------------------

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_REFERENCE_SCHEMA: dict[str, Any] = {
    "type": "string",
    "pattern": REFERENCE_PATTERN,
    "description": "expanded when the file is loaded",
}


def settings_schema(
    settings_type: type[Any], *, overrides: Mapping[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the mapping :func:`parse_settings` reads into ``settings_type``.

    ``overrides`` replaces the schema of some keys, as a caller that knows more does (the
    sources' provider, the sinks' types)."""
    hints = typing.get_type_hints(settings_type)
    documented = attribute_docstrings(settings_type)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field in file_fields(settings_type).items():
        if overrides is not None and name in overrides:
            properties[name] = overrides[name]
        else:
            properties[name] = _field_schema(field, hints[name], documented.get(name))
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        if not has_default and DEFAULT_FROM not in field.metadata:
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    description = inspect.getdoc(settings_type)
    # A dataclass without a docstring gets its signature as one; that describes nothing.
    if description and not description.startswith(f"{settings_type.__name__}("):
        schema["description"] = description
    return schema


def _field_schema(field: dataclasses.Field[Any], hint: Any, docstring: str | None) -> dict[str, Any]:
    value, leaf = _value_schema(field, hint)
    bounds = _bounds(field)
    if bounds:
        # The field's own bounds replace the "not negative" every number has.
        value.pop("minimum", None)
    for keyword, (limit, _allows, _words) in bounds.items():
        value[keyword] = limit
    if leaf and not _takes_any_text(value):
        value = {"anyOf": [value, _REFERENCE_SCHEMA]}
    if _without_none(hint) is not hint:
        value = {"anyOf": [value, {"type": "null"}]}
    description = field.metadata.get(DESCRIPTION, docstring)
    if description:
        value["description"] = description
    default = _default_of(field)
    if default is not None:
        value["default"] = default
    return value


def _value_schema(field: dataclasses.Field[Any], hint: Any) -> tuple[dict[str, Any], bool]:
    """The schema of the field's value, and whether that value is a leaf."""
    kind = _kind(hint)
    leaf = PARSE in field.metadata or (READ not in field.metadata and (kind is None or kind.leaf))
    if SCHEMA in field.metadata:
        return dict(field.metadata[SCHEMA]), leaf
    convert = field.metadata.get(PARSE)
    if isinstance(convert, Choice):
        return {"enum": list(convert.choices)}, leaf
    return (dict(kind.schema()) if kind is not None else {}), leaf


def _takes_any_text(schema: Mapping[str, Any]) -> bool:
    if not schema:
        return True
    if "anyOf" in schema:
        return any(_takes_any_text(branch) for branch in schema["anyOf"])
    kinds = schema.get("type", ())
    kinds = [kinds] if isinstance(kinds, str) else kinds
    return "string" in kinds and not {"enum", "const", "pattern"} & schema.keys()


def _default_of(field: dataclasses.Field[Any]) -> Any:
    """The field's default as JSON, or ``None`` for none worth showing (a nested section's, a computed one)."""
    if DEFAULT_FROM in field.metadata:
        return None
    if field.default is not dataclasses.MISSING:
        default: Any = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        return None
    return _as_json(default)


def _as_json(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list) and all(isinstance(item, str | int | float) for item in value):
        return list(value)
    if isinstance(value, Mapping) and all(isinstance(item, str) for item in value.values()):
        return dict(value)
    return None


def attribute_docstrings(settings_type: type[Any]) -> dict[str, str]:
    """The string literals right after field declarations in the class body, by field name."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(settings_type)))
    except (OSError, TypeError, SyntaxError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    found: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            found[statement.target.id] = inspect.cleandoc(following.value.value)
    return found
