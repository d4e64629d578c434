"""The normalizer's own rules around every provider's mapper."""

from __future__ import annotations

import dataclasses

import pytest

from hookbus.cloudevent import CloudEvent, Mode
from hookbus.config import SourceConfig, parse_source
from hookbus.mapping import Mapped, Mapper, SourceMapper, event_data
from hookbus.provider import Provider, provider
from hookbus.rawevent import RawEvent
from normalizer import normalizer as normalizer_module
from normalizer.errors import SchemaViolationError
from normalizer.normalizer import Normalizer
from tests.providers.mapping_support import raw_event


def _naming(event_type: str) -> SourceMapper:
    def map_event(raw: RawEvent) -> Mapped:
        return Mapped(
            type=event_type,
            known_type=True,
            local_id="1",
            partition_key="k",
            data=event_data(resource="offer", action="created", resource_id="1"),
        )

    return map_event


def _october_mapping_to(event_type: str) -> Provider:
    mapper = Mapper(bind=lambda source: _naming(event_type), known_types={})
    return dataclasses.replace(provider("october"), mapper=mapper)


@pytest.mark.parametrize("event_type", ["officernd.member.updated", "octoberish.offer.created", "stripe.charge"])
def test_a_mapper_naming_a_type_outside_its_provider_is_refused(
    event_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(normalizer_module, "provider", lambda name: _october_mapping_to(event_type))
    source = SourceConfig(name="lend", provider="october", secrets=())
    with pytest.raises(SchemaViolationError, match=r"outside october\.\*"):
        Normalizer({"lend": source}).normalize(raw_event(source, b"{}"))


def test_a_type_in_its_own_namespace_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(normalizer_module, "provider", lambda name: _october_mapping_to("october.offer.created"))
    source = SourceConfig(name="lend", provider="october", secrets=())
    assert Normalizer({"lend": source}).normalize(raw_event(source, b"{}")).type == "october.offer.created"


@pytest.mark.parametrize("kind", ["bad\udcff", "lone\ud800", "\udcc3\udca9"])
def test_an_attribute_that_is_not_unicode_text_is_a_schema_violation_not_a_crash(kind: str) -> None:
    # A generic source maps its type from a header; a header byte that is not UTF-8 reaches the
    # mapper as a lone surrogate (hookbus.rawevent), which no Kafka header or JSON string can carry.
    source = parse_source({"name": "crm", "provider": "generic", "api_key": "k", "mapping": {"type": "header:X-Kind"}})
    raw = dataclasses.replace(raw_event(source, b"{}"), headers={"x-kind": kind})
    with pytest.raises(SchemaViolationError) as caught:
        Normalizer({"crm": source}).normalize(raw)
    assert caught.value.reason == "attribute_not_unicode"
    assert kind not in str(caught.value)


def test_data_may_hold_what_is_not_unicode_text_and_still_encodes() -> None:
    source = parse_source({"name": "crm", "provider": "generic", "api_key": "k"})
    event = Normalizer({"crm": source}).normalize(raw_event(source, b'{"note": "\\ud800"}'))
    for mode in Mode:
        _key, value, headers = event.to_kafka(mode)
        assert CloudEvent.from_kafka(headers, value).data == event.data


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_trace_context_the_webhook_arrived_with_travels_in_the_event() -> None:
    source = parse_source({"name": "crm", "provider": "generic", "api_key": "k"})
    context = {"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"}
    raw = dataclasses.replace(raw_event(source, b"{}"), headers=context)
    event = Normalizer({"crm": source}).normalize(raw)
    assert {name: event.extensions.get(name) for name in context} == context
    # The extension passes the canonical schema and travels as ce_ headers on Kafka.
    Normalizer({"crm": source}).validate(event)
    _key, value, headers = event.to_kafka(Mode.BINARY)
    assert CloudEvent.from_kafka(headers, value).extensions["traceparent"] == TRACEPARENT


def test_a_malformed_trace_context_is_left_out_of_the_event() -> None:
    source = parse_source({"name": "crm", "provider": "generic", "api_key": "k"})
    raw = dataclasses.replace(raw_event(source, b"{}"), headers={"traceparent": "00-not-a-trace-01"})
    event = Normalizer({"crm": source}).normalize(raw)
    assert "traceparent" not in event.extensions
