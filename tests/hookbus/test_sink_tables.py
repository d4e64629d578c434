"""The table sinks' helpers: the canonical columns of an event."""

from __future__ import annotations

from hookbus.sink_tables import EventRow
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
