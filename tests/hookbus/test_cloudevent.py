"""The CloudEvents Kafka binding: an event reads back as it was written, in either mode."""

from __future__ import annotations

import pytest

from hookbus.cloudevent import CloudEvent, Mode


def _canonical(known_type: bool) -> CloudEvent:
    return CloudEvent(
        id="october:5f0c",
        source="/webhooks/october",
        type="october.request.updated",
        subject="64a1",
        time="2024-05-01T10:00:00.000000Z",
        data={"resource": "request", "action": "updated"},
        extensions={"provider": "october", "partitionkey": "october:request:64a1", "knowntype": known_type},
    )


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("known_type", [True, False])
def test_an_event_reads_back_as_written_booleans_included(mode: Mode, known_type: bool) -> None:
    event = _canonical(known_type)
    _, value, headers = event.to_kafka(mode)

    read = CloudEvent.from_kafka(headers, value)

    assert read == event
    assert read.extensions["knowntype"] is known_type


def test_a_boolean_extension_that_is_not_true_or_false_stays_text() -> None:
    event = _canonical(True)
    _, value, headers = event.to_kafka(Mode.BINARY)
    foreign = [(name, b"yes" if name == "ce_knowntype" else text) for name, text in headers]

    assert CloudEvent.from_kafka(foreign, value).extensions["knowntype"] == "yes"
