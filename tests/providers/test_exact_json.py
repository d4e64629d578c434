"""Numbers keep their exact digits from body to event to sink, and nesting too deep to
carry is a mapping error with its reason, never a RecursionError."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from hookbus.cloudevent import Mode
from hookbus.config import SourceConfig
from hookbus.mapping import MappingError
from normalizer.normalizer import Normalizer
from tests.providers import mapping_support as support

BIG = b"123456789012345678901234567890"
LONG = b"0.1000000000000000055511151231257827"


@pytest.mark.parametrize(
    ("source", "template", "headers"),
    [
        (
            support.OCTOBER,
            b'{"event": "update_offer", "offerId": "o1", "diff": {"property": "amount", "after": %s}}',
            support.TIMESTAMP,
        ),
        (
            support.OFFICERND,
            b'{"event": "e", "eventType": "fee.created", "data": {"object": {"_id": "f", "n": %s}}}',
            {},
        ),
        (support.OFFERTE, b'{"id": "x", "type": "lead.sold", "payload": {"lead_id": 1, "n": %s}}', {}),
        (support.OCTAMILE, b'{"trnsctnId": "t", "status": "d", "n": %s}', {}),
        (support.GENERIC, b'{"n": [%s]}', {}),
    ],
)
@pytest.mark.parametrize("number", [BIG, LONG, b"-" + BIG, b"1.5e400", b"1e-400", b"9" * 5000])
def test_numbers_keep_their_exact_digits_end_to_end(
    source: SourceConfig, template: bytes, headers: dict[str, str], number: bytes
) -> None:
    event = support.mapped(source, template % number, headers=headers)
    # The digits as sent; an exponent may be written in Decimal's notation (1.5E+400).
    written = {number, str(Decimal(number.decode())).encode()}
    for mode in Mode:
        _, value, _ = event.to_kafka(mode)
        assert any(text in value for text in written)
    assert str(Decimal(number.decode())) in {str(Decimal(str(n))) for n in _numbers(event.data)}


def _numbers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [n for child in value.values() for n in _numbers(child)]
    if isinstance(value, list):
        return [n for child in value for n in _numbers(child)]
    return [value] if isinstance(value, int | float | Decimal) and not isinstance(value, bool) else []


@pytest.mark.parametrize("depth", [300, 100_000])
@pytest.mark.parametrize("source", [support.GENERIC, support.OCTAMILE, support.OFFICERND])
def test_deep_nesting_is_a_mapping_error_with_a_reason(source: SourceConfig, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    bodies = {
        support.GENERIC.name: nested,
        support.OCTAMILE.name: b'{"trnsctnId": "t", "status": "d", "n": %s}' % nested,
        support.OFFICERND.name: b'{"event": "e", "eventType": "fee.created", "data": {"object": {"_id": "f", "n": %s}}}'
        % nested,
    }
    with pytest.raises(MappingError) as caught:
        support.NORMALIZER.normalize(support.raw_event(source, bodies[source.name]))
    assert caught.value.reason == "too_deeply_nested"


def test_nesting_up_to_the_limit_maps_and_encodes() -> None:
    event = support.mapped(support.GENERIC, b"[" * 200 + b"]" * 200)
    assert b"[" * 200 + b"]" * 200 in event.data_bytes()


def test_a_unix_time_with_more_digits_than_a_double_still_maps() -> None:
    source = SourceConfig(name="crm", provider="generic", options={"mapping": {"time": "/at"}})
    normalizer = Normalizer({"crm": source})
    event = normalizer.normalize(support.raw_event(source, b'{"at": 1767225600.1234567890123456789}'))
    assert event.time == "2026-01-01T00:00:00.123457Z"
    assert str(event.data["object"]["at"]) == "1767225600.1234567890123456789"
