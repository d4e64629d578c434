"""The normalizer's stats line: quiet when idle, bounded when busy."""

from __future__ import annotations

import io

import orjson

from hookbus.logging import configure_logging, get_logger
from hookbus.stage.runtime import Outgoing
from normalizer.service import STATS_MOST_LABELS, Stats


def outgoing(label: str, *, dead_letter: bool = False) -> Outgoing:
    return Outgoing(topic="t", key=None, value=None, headers=[], source=None, label=label, dead_letter=dead_letter)  # type: ignore[arg-type]


def logged(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_nothing_is_logged_when_nothing_was_normalized_since_the_last_line() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    log, stats = get_logger(), Stats()
    stats.log_changes(log, "normalizer_stats")
    stats.count([outgoing("october.offer.created"), outgoing("not_json", dead_letter=True)])
    stats.log_changes(log, "normalizer_stats")
    stats.log_changes(log, "normalizer_stats")

    (line,) = logged(stream)
    assert line["records"] == 2
    assert line["events_by_type"] == {"october.offer.created": 1}
    assert line["dead_letters_by_reason"] == {"not_json": 1}


def test_a_line_names_only_what_came_since_the_previous_one_and_keeps_the_totals() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    log, stats = get_logger(), Stats()
    stats.count([outgoing("a.one"), outgoing("a.one")])
    stats.log_changes(log, "normalizer_stats")
    stats.count([outgoing("b.two")])
    stats.log_changes(log, "normalizer_stats")
    stats.log(log, "normalizer_stopped")

    first, second, stopped = logged(stream)
    assert first["events_by_type"] == {"a.one": 2}
    assert second["events_by_type"] == {"b.two": 1}
    assert second["events"] == 3
    assert stopped == {**stopped, "records": 3, "events": 3, "dead_letters": 0, "events_by_type": {}}


def test_a_line_names_the_most_common_types_and_sums_the_rest() -> None:
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    stats = Stats()
    many = STATS_MOST_LABELS + 30
    stats.count([outgoing("common.type")] * 5 + [outgoing(f"rare.type{index}") for index in range(many)])
    stats.log_changes(get_logger(), "normalizer_stats")

    (line,) = logged(stream)
    by_type = line["events_by_type"]
    assert isinstance(by_type, dict)
    assert len(by_type) == STATS_MOST_LABELS + 1
    assert by_type["common.type"] == 5
    assert sum(by_type.values()) == 5 + many
    assert by_type["(others)"] == many - (STATS_MOST_LABELS - 1)
