"""The one reader: a section into its dataclass by field, type hint and metadata, and its JSON Schema."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import jsonschema
import pytest

from hookbus.errors import ConfigError
from hookbus.settings import (
    DEFAULT_FROM,
    DESCRIPTION,
    EXCLUSIVE_MINIMUM,
    MINIMUM,
    NOT_IN_FILE,
    PARSE,
    IPNetwork,
    Secret,
    as_choice,
    as_str,
    parse_settings,
    settings_schema,
)


class Colour(StrEnum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


@dataclass(frozen=True, slots=True)
class Limits:
    size: int = field(metadata={MINIMUM: 1})
    rate: float = field(default=1.0, metadata={EXCLUSIVE_MINIMUM: 0})


@dataclass(frozen=True, slots=True)
class Route:
    topic: str
    types: tuple[str, ...] = ()


def _shout(value: Any, key: str) -> str:
    return as_str(value, key).upper()


@dataclass(frozen=True, slots=True)
class Example:
    """An example section."""

    name: str
    """Who it is."""
    port: int = 8080
    ratio: float = 0.5
    enabled: bool = False
    password: Secret | None = None
    keys: tuple[Secret, ...] = ()
    hosts: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    colour: Colour = Colour.RED
    mode: str = field(default="binary", metadata={PARSE: as_choice("binary", "structured")})
    loud: str = field(default="", metadata={PARSE: _shout, DESCRIPTION: "said loudly"})
    limits: Limits | None = None
    routes: tuple[Route, ...] = ()
    low: int = 1
    high: int = field(default=0, metadata={DEFAULT_FROM: lambda values: values.get("low", 1) * 10})
    computed: str = field(default="", metadata={NOT_IN_FILE: True})

    def __post_init__(self) -> None:
        if self.high < self.low:
            raise ConfigError("must not be less than low", key="high")


def read(section: Any) -> Example:
    return parse_settings(Example, section, prefix="example")


def error_of(section: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        read(section)
    return caught.value


def test_every_kind_of_value_is_read() -> None:
    example = read(
        {
            "name": "a",
            "port": "9000",
            "ratio": 2,
            "enabled": "yes",
            "password": "hunter2",
            "keys": ["k1", "", "k2"],
            "hosts": "only-one",
            "networks": ["10.0.0.0/8", "fd00::/8"],
            "headers": {"X-A": 1},
            "colour": "Green",
            "mode": "structured",
            "loud": "hi",
            "limits": {"size": 3},
            "routes": [{"topic": "t1"}, {"topic": "t2", "types": ["a.*"]}],
            "low": 2,
        }
    )

    assert example == Example(
        name="a",
        port=9000,
        ratio=2.0,
        enabled=True,
        password=Secret(b"hunter2"),
        keys=(Secret(b"k1"), Secret(b"k2")),
        hosts=("only-one",),
        networks=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")),
        headers={"X-A": "1"},
        colour=Colour.GREEN,
        mode="structured",
        loud="HI",
        limits=Limits(size=3, rate=1.0),
        routes=(Route("t1"), Route("t2", ("a.*",))),
        low=2,
        high=20,
    )
    assert example.colour is Colour.GREEN


def test_absent_and_null_keys_take_their_defaults() -> None:
    assert read({"name": "a", "port": None}) == Example(name="a", high=10)


def test_a_secret_never_shows_in_a_repr() -> None:
    example = read({"name": "a", "password": "hunter2", "keys": ["k1"]})
    assert "hunter2" not in repr(example)
    assert "k1" not in repr(example)
    assert repr(example.password) == "Secret('***')"


@pytest.mark.parametrize(
    ("section", "key", "detail"),
    [
        ({"nmae": "a"}, "example.nmae", "unknown key"),
        ({}, "example.name", "is required"),
        ({"name": "a", "computed": "x"}, "example.computed", "unknown key"),
        ({"name": ["a"]}, "example.name", "must be a string, not list"),
        ({"name": "a", "port": "many"}, "example.port", "must be a whole number"),
        ({"name": "a", "port": -1}, "example.port", "must not be negative"),
        ({"name": "a", "enabled": "maybe"}, "example.enabled", "must be true or false"),
        ({"name": "a", "password": ""}, "example.password", "is empty"),
        ({"name": "a", "networks": ["example.com"]}, "example.networks", "not an IP address or CIDR"),
        ({"name": "a", "headers": ["X-A"]}, "example.headers", "must be a mapping, not list"),
        ({"name": "a", "colour": "mauve"}, "example.colour", "must be red, green or blue, not 'mauve'"),
        ({"name": "a", "mode": "batched"}, "example.mode", "must be one of binary, structured, not 'batched'"),
        ({"name": "a", "limits": {"size": 0}}, "example.limits.size", "must be at least 1"),
        ({"name": "a", "limits": {"size": 1, "rate": 0}}, "example.limits.rate", "must be greater than 0"),
        ({"name": "a", "limits": {"sise": 1}}, "example.limits.sise", "unknown key"),
        ({"name": "a", "limits": {}}, "example.limits.size", "is required"),
        ({"name": "a", "limits": 3}, "example.limits", "must be a mapping, not int"),
        ({"name": "a", "routes": [{"topic": "t"}, {"topik": "t"}]}, "example.routes[1].topik", "unknown key"),
        ({"name": "a", "routes": {"topic": "t"}}, "example.routes", "must be a list"),
        ({"name": "a", "low": 5, "high": 1}, "example.high", "must not be less than low"),
        (["name"], "example", "must be a mapping, not list"),
    ],
)
def test_a_bad_section_names_the_key_under_the_prefix(section: Any, key: str, detail: str) -> None:
    error = error_of(section)
    assert error.key == key
    assert detail in error.detail


def test_an_unknown_key_is_named_before_a_missing_one() -> None:
    assert error_of({"nmae": "a", "port": "many"}).key == "example.nmae"


def test_without_a_prefix_keys_are_the_field_names() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(Limits, {"size": 0})
    assert caught.value.key == "size"


def test_references_are_expanded_once_at_the_leaf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXAMPLE_PORT", "9001")
    monkeypatch.setenv("EXAMPLE_NAME", "n${HOME}")
    monkeypatch.setenv("EXAMPLE_LOUD", "quiet")
    example = read(
        {
            "name": "${EXAMPLE_NAME}",
            "port": "${EXAMPLE_PORT}",
            "loud": "${EXAMPLE_LOUD}",
            "limits": {"size": "${EXAMPLE_PORT}"},
        }
    )
    assert (example.name, example.port, example.loud, example.limits) == ("n${HOME}", 9001, "QUIET", Limits(9001))


def test_an_unset_variable_is_keyed_at_its_leaf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXAMPLE_UNSET", raising=False)
    error = error_of({"name": "a", "routes": [{"topic": "${EXAMPLE_UNSET}"}]})
    assert (error.key, error.detail) == ("example.routes[0].topic", "environment variable EXAMPLE_UNSET is not set")


def test_a_type_without_a_reader_is_a_programming_error() -> None:
    @dataclass(frozen=True)
    class Odd:
        value: complex = 0j

    with pytest.raises(TypeError, match="no reader"):
        parse_settings(Odd, {"value": 1})
    with pytest.raises(TypeError, match="not a dataclass"):
        parse_settings(dict, {})


# --- the schema ---------------------------------------------------------------------------


def validator(settings_type: type[Any]) -> jsonschema.Draft202012Validator:
    schema = settings_schema(settings_type)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_schema_describes_keys_types_defaults_and_descriptions() -> None:
    schema = settings_schema(Example)

    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name"]
    assert schema["description"] == "An example section."
    properties = schema["properties"]
    assert "computed" not in properties
    assert properties["name"]["description"] == "Who it is."
    assert properties["loud"]["description"] == "said loudly"
    assert properties["port"]["default"] == 8080
    assert properties["colour"]["default"] == "red"
    assert properties["colour"]["anyOf"][0] == {"enum": ["red", "green", "blue"]}
    assert properties["mode"]["anyOf"][0] == {"enum": ["binary", "structured"]}
    assert "default" not in properties["high"]
    assert settings_schema(Limits)["properties"]["rate"]["anyOf"][0] == {"type": "number", "exclusiveMinimum": 0}


@pytest.mark.parametrize(
    "section",
    [
        {"name": "a"},
        {"name": "a", "port": "${PORT}", "enabled": "${ENABLED:-true}", "colour": "${COLOUR}"},
        {"name": 7, "hosts": "one", "keys": ["${KEY}"], "limits": None, "routes": [{"topic": "t"}]},
    ],
)
def test_the_schema_takes_what_the_reader_takes(section: dict[str, Any]) -> None:
    assert not list(validator(Example).iter_errors(section))


@pytest.mark.parametrize(
    "section",
    [
        {"nmae": "a"},
        {},
        {"name": "a", "port": "eighty"},
        {"name": "a", "port": -1},
        {"name": "a", "colour": "mauve"},
        {"name": "a", "mode": "batched"},
        {"name": "a", "limits": {"size": 0}},
        {"name": "a", "limits": {"size": 1, "sise": 1}},
        {"name": "a", "routes": [{"topic": "t", "typez": []}]},
        {"name": "a", "computed": "x"},
    ],
)
def test_the_schema_refuses_what_the_reader_refuses(section: dict[str, Any]) -> None:
    assert list(validator(Example).iter_errors(section))


# --- the sinks' sections, read by the same reader ---------------------------------------------


def _sink_settings(sink_type: str) -> Any:
    from sinks.configure import load_sink_type, sink_types

    return load_sink_type(sink_types()[sink_type]).settings


def test_the_sinks_sections_are_read_by_field_type() -> None:
    postgres = parse_settings(
        _sink_settings("postgres"),
        {"dsn": "postgresql://db/x", "table": "Events", "pool_max_size": "8"},
        prefix="sinks.archive",
    )
    assert (postgres.table, postgres.pool_max_size) == ("events", 8)
    route = parse_settings(
        _sink_settings("kafka"),
        {"routes": [{"topic": "a", "types": ["x.*"]}], "mode": "structured", "default_topic": "b"},
        prefix="sinks.archive",
    )
    assert (route.routes[0].topic, route.routes[0].types, route.mode, route.default_topic) == (
        "a",
        ("x.*",),
        "structured",
        "b",
    )


@pytest.mark.parametrize(
    ("sink_type", "section", "key"),
    [
        ("kafka", {"routes": [{"topic": "a", "typez": ["x.*"]}]}, "sinks.archive.routes[0].typez"),
        ("kafka", {"routes": []}, "sinks.archive.routes"),
        ("http", {"url": "https://example.com/", "secret": "s3cret"}, "sinks.archive.secret"),
        ("postgres", {"dsn": "postgresql://db/x", "tabel": "x"}, "sinks.archive.tabel"),
    ],
)
def test_a_bad_sink_section_names_its_key(sink_type: str, section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(_sink_settings(sink_type), section, prefix="sinks.archive")
    assert caught.value.key == key


def test_a_dataclass_default_factory_is_the_default() -> None:
    @dataclass(frozen=True)
    class WithFactory:
        tags: Mapping[str, str] = dataclasses.field(default_factory=lambda: {"a": "b"})

    assert parse_settings(WithFactory, {}).tags == {"a": "b"}
    assert settings_schema(WithFactory)["properties"]["tags"]["default"] == {"a": "b"}
