"""The compiled validator (jsonschema-rs) that answers on the hot path agrees with the
reference (jsonschema) on every golden event and on typical invalid ones; where their regex
engines differ, the normalizer keeps the reference's verdict."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from hookbus.cloudevent import CloudEvent
from normalizer.normalizer import Normalizer
from schemas import cloudevent_schema, compiled_validator_for, data_schema, validator_for
from tests.providers.mapping_support import GOLDEN_PROVIDERS, golden_file, golden_sources, read_golden

Variant = Callable[[dict[str, Any]], None]


def _golden_events() -> list[Any]:
    return [
        pytest.param(case["event"], id=f"{provider}/{case['name']}")
        for provider in GOLDEN_PROVIDERS
        for case in read_golden(golden_file(provider))["cases"]
    ]


def _missing_id(event: dict[str, Any]) -> None:
    del event["id"]


def _type_not_a_string(event: dict[str, Any]) -> None:
    event["type"] = 42


def _knowntype_not_a_boolean(event: dict[str, Any]) -> None:
    event["knowntype"] = "yes"


def _time_without_zone(event: dict[str, Any]) -> None:
    event["time"] = "2026-01-01 00:00:00"


def _data_not_an_object(event: dict[str, Any]) -> None:
    event["data"] = ["not", "an", "object"]


def _data_missing_resource(event: dict[str, Any]) -> None:
    event["data"].pop("resource", None)


def _data_fields_of_wrong_types(event: dict[str, Any]) -> None:
    event["data"] = {**event["data"], "resource": None, "changes": "none"}


VARIANTS: dict[str, Variant] = {
    "missing id": _missing_id,
    "type not a string": _type_not_a_string,
    "knowntype not a boolean": _knowntype_not_a_boolean,
    "time without zone": _time_without_zone,
    "data not an object": _data_not_an_object,
    "data missing resource": _data_missing_resource,
    "data with wrong types": _data_fields_of_wrong_types,
}


def _assert_agree(event: dict[str, Any]) -> bool:
    event_schema = cloudevent_schema()
    verdicts = {
        "event": (compiled_validator_for(event_schema).is_valid(event), validator_for(event_schema).is_valid(event))
    }
    provider = event.get("provider")
    if provider in GOLDEN_PROVIDERS:
        provider_schema = data_schema(str(provider))
        data = event.get("data")
        verdicts["data"] = (
            compiled_validator_for(provider_schema).is_valid(data),
            validator_for(provider_schema).is_valid(data),
        )
    for what, (compiled, reference) in verdicts.items():
        assert compiled == reference, f"{what}: compiled says {compiled}, reference says {reference}"
    return all(reference for _, reference in verdicts.values())


@pytest.mark.parametrize("event", _golden_events())
def test_validators_agree_on_golden_events(event: dict[str, Any]) -> None:
    assert _assert_agree(event)


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=list(VARIANTS))
@pytest.mark.parametrize("event", _golden_events())
def test_validators_agree_on_invalid_variants(event: dict[str, Any], variant: Variant) -> None:
    changed = copy.deepcopy(event)
    variant(changed)
    assert not _assert_agree(changed)


def test_where_only_the_reference_accepts_its_verdict_stands() -> None:
    document = read_golden(golden_file("october"))
    event = copy.deepcopy(document["cases"][0]["event"])
    # Python's re lets "$" match before a final newline; the compiled validator's engine
    # does not. The event was valid before the compiled validator existed: it still is.
    event["time"] += "\n"
    assert not compiled_validator_for(cloudevent_schema()).is_valid(event)
    assert validator_for(cloudevent_schema()).is_valid(event)
    Normalizer(golden_sources(document)).validate(CloudEvent.from_dict(event))
