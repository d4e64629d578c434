"""The delivery report's format: what the sinks publish and the console reads."""

from __future__ import annotations

import orjson
import pytest

from hookbus.delivery import DeliveryReport, DeliveryReportFormatError, Outcome


def _report(**overrides: object) -> DeliveryReport:
    values: dict[str, object] = {
        "time": 1_767_225_600.25,
        "sink": "warehouse",
        "event_id": "evt-1",
        "ingest_id": "01JGZ8Q5K3M2N4P6R8T0V2X4Z6",
        "type": "october.loan.funded",
        "subject": "loan/42",
        "outcome": Outcome.DEAD_LETTERED,
        "attempt": 3,
        "reason": "write_crashed",
        "detail": "KeyError",
        "dead_letter_topic": "hookbus.events.dlq.warehouse",
    }
    values.update(overrides)
    return DeliveryReport(**values)  # type: ignore[arg-type]


def test_a_report_is_the_documented_json_and_reads_back_the_same() -> None:
    report = _report()

    document = orjson.loads(report.to_json())

    assert document == {
        "v": 1,
        "time": 1_767_225_600.25,
        "sink": "warehouse",
        "event_id": "evt-1",
        "ingest_id": "01JGZ8Q5K3M2N4P6R8T0V2X4Z6",
        "type": "october.loan.funded",
        "subject": "loan/42",
        "outcome": "dead_lettered",
        "attempt": 3,
        "reason": "write_crashed",
        "detail": "KeyError",
        "dead_letter_topic": "hookbus.events.dlq.warehouse",
    }
    assert DeliveryReport.from_json(report.to_json()) == report


def test_a_long_detail_is_clipped() -> None:
    report = _report(detail="x" * 2000)

    assert report.detail == "x" * 512 + "…"


@pytest.mark.parametrize(
    "value",
    [
        b"not json",
        b"[]",
        b'{"v": 2, "sink": "s"}',
        orjson.dumps({**orjson.loads(_report().to_json()), "outcome": "lost"}),
        orjson.dumps({k: v for k, v in orjson.loads(_report().to_json()).items() if k != "sink"}),
        orjson.dumps({**orjson.loads(_report().to_json()), "event_id": 7}),
    ],
)
def test_what_is_not_a_version_1_report_is_refused_with_a_reason(value: bytes) -> None:
    with pytest.raises(DeliveryReportFormatError) as refused:
        DeliveryReport.from_json(value)

    assert refused.value.reason == "not_a_delivery_report"
