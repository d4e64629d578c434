"""The schemas are the contract: valid draft 2020-12, versioned, with examples that hold."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from hookbus.errors import ConfigError
from hookbus.provider import provider, providers
from schemas import CLOUDEVENT_SCHEMA_ID, cloudevent_schema, data_schema, data_schema_id, validator_for

SCHEMAS = {"cloudevent": cloudevent_schema(), **{provider: data_schema(provider) for provider in providers()}}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_each_schema_is_valid_draft_2020_12_with_an_id_and_examples(name: str) -> None:
    schema = SCHEMAS[name]
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["description"]
    validator = validator_for(schema)
    assert schema["examples"]
    for example in schema["examples"]:
        validator.validate(example)


@pytest.mark.parametrize("provider", list(providers()))
def test_data_schema_ids_are_versioned_by_provider(provider: str) -> None:
    assert data_schema_id(provider) == f"https://hookbus.dev/schemas/data/{provider}/v1.json"
    assert cloudevent_schema()["$id"] == CLOUDEVENT_SCHEMA_ID


def _example() -> dict[str, Any]:
    example: dict[str, Any] = dict(cloudevent_schema()["examples"][0])
    return example


def test_the_canonical_example_validates_against_its_provider_data_schema() -> None:
    example = _example()
    validator_for(data_schema(example["provider"])).validate(example["data"])


@pytest.mark.parametrize("attribute", sorted(cloudevent_schema()["required"]))
def test_an_event_missing_a_required_attribute_fails(attribute: str) -> None:
    event = _example()
    del event[attribute]
    assert not validator_for(cloudevent_schema()).is_valid(event)


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("specversion", "0.3"),
        ("source", "webhooks/rnd"),
        ("type", "Charge succeeded"),
        ("time", "2020-10-19 10:40:00"),
        ("authmethod", "password"),
        ("knowntype", "yes"),
        ("dataschema", "http://example.com/schema.json"),
    ],
)
def test_an_event_with_a_wrong_attribute_fails(attribute: str, value: Any) -> None:
    event = {**_example(), attribute: value}
    assert not validator_for(cloudevent_schema()).is_valid(event)


def test_data_missing_a_common_field_fails_every_provider_schema() -> None:
    for name in providers():
        example = dict(data_schema(name)["examples"][0])
        del example["changes"]
        assert not validator_for(data_schema(name)).is_valid(example), name


def _installed_with_schema(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, schema_id: str) -> str:
    """A provider ``third`` installed with a data schema of ``$id`` ``schema_id``; its name."""
    document = {**data_schema("october"), "$id": schema_id}
    path = tmp_path / "schema.json"
    path.write_bytes(orjson.dumps(document))
    third = dataclasses.replace(provider("october"), name="third", data_schema=path)
    monkeypatch.setitem(providers(), third.name, third)  # type: ignore[index]
    data_schema.cache_clear()
    return third.name


@pytest.mark.parametrize(
    ("schema_id", "complaint"),
    [
        ("http://schemas.example.org/third/v1.json", "no versioned https"),
        ("https://schemas.example.org/third/latest.json", "no versioned https"),
        ("https://hookbus.dev/schemas/data/october/v1.json", "declare the same data schema"),
    ],
)
def test_a_provider_schema_id_that_events_could_not_carry_is_refused_at_startup(
    schema_id: str, complaint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    name = _installed_with_schema(monkeypatch, tmp_path, schema_id)
    try:
        with pytest.raises(ConfigError, match=complaint):
            data_schema(name)
    finally:
        data_schema.cache_clear()


def test_a_third_party_schema_under_its_own_address_is_taken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    name = _installed_with_schema(monkeypatch, tmp_path, "https://schemas.example.org/hookbus/third/v1.json")
    try:
        assert data_schema(name)["$id"] == "https://schemas.example.org/hookbus/third/v1.json"
    finally:
        data_schema.cache_clear()


def _closed_objects(schema: Any, where: str = "") -> list[str]:
    """Where a schema forbids fields it does not name (``additionalProperties: false``)."""
    if isinstance(schema, dict):
        found = [where] if schema.get("additionalProperties") is False else []
        return found + [path for key, value in schema.items() for path in _closed_objects(value, f"{where}/{key}")]
    if isinstance(schema, list):
        return [path for index, value in enumerate(schema) for path in _closed_objects(value, f"{where}/{index}")]
    return []


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_no_schema_forbids_the_fields_version_1_may_add(name: str) -> None:
    # The versioning rule (cloudevent.json's description): v1 may add fields. A closed
    # object would make every event carrying a new field a schema violation.
    assert _closed_objects(SCHEMAS[name]) == []
