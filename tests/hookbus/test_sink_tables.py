"""The table sinks' helpers: the canonical columns of an event."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hookbus.sink_tables import NUL_TEXT, EventRow, sortable_time
from tests.sinks.helpers import event


def test_a_row_holds_the_canonical_fields() -> None:
    row = EventRow.of(event(7, key="member-7"))
    assert (row.id, row.type, row.source, row.subject) == (
        "officernd-main:evt-7",
        "officernd.member.created",
        "hookbus/officernd-main",
        "member/7",
    )
    assert row.time is not None
    assert row.time.isoformat() == "2024-05-01T10:00:00+00:00"
    assert row.received_at is not None
    assert row.received_at.isoformat() == "2024-05-01T10:00:01.500000+00:00"
    assert (row.provider, row.partition_key) == ("officernd", "member-7")


def test_a_nul_becomes_its_escape_text_in_every_column_and_the_json_still_parses() -> None:
    row = EventRow.of(event(1, key="k\u0000", data={"a\u0000": "b\u0000", "list": ["\u0000", 1]}))
    assert row.partition_key == f"k{NUL_TEXT}"
    assert json.loads(row.data) == {f"a{NUL_TEXT}": f"b{NUL_TEXT}", "list": [NUL_TEXT, 1]}
    assert json.loads(row.event)["partitionkey"] == f"k{NUL_TEXT}"
    assert "\x00" not in row.data + row.event + (row.partition_key or "")


def test_a_nul_beside_a_number_orjson_cannot_write_keeps_the_number_exact() -> None:
    # Re-encoding without the NUL must take the exact writer too, or such an event could never be stored.
    huge = 123456789012345678901234567890
    row = EventRow.of(event(2, data={"note": "a\u0000b", "amount": huge}))
    assert json.loads(row.data) == {"note": f"a{NUL_TEXT}b", "amount": huge}
    assert json.loads(row.event)["data"]["amount"] == huge


def test_sortable_time_is_fixed_width_utc_with_microseconds() -> None:
    assert sortable_time(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000Z"
    assert sortable_time(datetime(2026, 1, 1, 2, 0, 0, 5, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-01-01T00:00:00.000005Z"
    )
