"""The schemas are the contract: valid draft 2020-12, versioned, with examples that hold."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from hookbus.provider import providers
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
    for provider in providers():
        example = dict(data_schema(provider)["examples"][0])
        del example["changes"]
        assert not validator_for(data_schema(provider)).is_valid(example), provider


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
