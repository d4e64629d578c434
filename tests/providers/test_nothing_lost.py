"""Nothing sent is lost in mapping: every field of the body, and the provider's own
timestamps, reach the event."""

from __future__ import annotations

import orjson

from tests.providers.mapping_support import OCTOBER, OFFICERND, TIMESTAMP, mapped


def test_october_diff_fields_beyond_property_and_after_are_kept() -> None:
    body = {
        "event": "update_request",
        "requestId": "r1",
        "diff": {"property": "status", "after": "accepted", "before": "pending", "at": 1},
    }
    event = mapped(OCTOBER, orjson.dumps(body), headers=TIMESTAMP)
    assert event.data["changes"] == [{"field": "status", "after": "accepted"}]
    assert event.data["extra"]["diff"] == {"before": "pending", "at": 1}


def test_october_timestamp_is_in_the_event() -> None:
    event = mapped(OCTOBER, b'{"event": "new_report", "requestId": "r1"}', headers=TIMESTAMP)
    assert event.extensions["senttime"] == "2022-03-22T08:24:59.151000Z"


def test_officernd_signature_timestamp_is_in_the_event() -> None:
    body = b'{"event": "e1", "eventType": "member.created", "data": {"object": {"_id": "m1"}}}'
    headers = {"officernd-signature": "t=1602237976,signature=0996"}
    assert mapped(OFFICERND, body, headers=headers).extensions["senttime"] == "2020-10-09T10:06:16.000000Z"


def test_a_timestamp_that_is_not_a_unix_time_leaves_senttime_out() -> None:
    event = mapped(OCTOBER, b'{"event": "new_report", "requestId": "r1"}', headers={"x-o5r-timestamp": "soon"})
    assert "senttime" not in event.extensions
