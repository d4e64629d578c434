"""The reliability report keeps the rows a partial run (``scripts/reliability -k ...``) did not measure."""

from __future__ import annotations

from tests.reliability.report import ATTACKS, BEGIN_MARKER, END_MARKER, FAULTS, Finding, render

COMMAND = "pytest tests/reliability"


def fault(name: str, sent: int) -> Finding:
    numbers = {
        "sent": sent,
        "answered_2xx": sent,
        "refusals": {"503": 2},
        "in_topic": sent,
        "redelivered": 0,
        "rows": sent,
        "duplicates": 0,
        "lost": 0,
        "other_5xx": 0,
        "arrived_without_2xx": 0,
    }
    return Finding(FAULTS, name, numbers, ())


def attack(name: str) -> Finding:
    numbers = {"requests": 3, "statuses": {"401": 3}, "server_errors": 0, "refusals_without_json_error": 0}
    return Finding(ATTACKS, name, numbers, ())


def rows_of(generated: str) -> list[str]:
    return [line for line in generated.splitlines() if line.startswith("| ") and "measured |" not in line]


def test_a_run_of_some_scenarios_replaces_their_rows_and_keeps_the_others() -> None:
    earlier = render([fault("broker killed", 100), fault("sink killed", 100), attack("replay")], command=COMMAND)

    later = render([fault("sink killed", 300), fault("cluster leader killed", 50)], command=COMMAND, previous=earlier)

    assert later.startswith(BEGIN_MARKER)
    assert later.endswith(END_MARKER)
    names = [row.split(" | ")[0].removeprefix("| ") for row in rows_of(later)]
    assert names == ["broker killed", "sink killed", "cluster leader killed", "replay"]
    sink_row = next(row for row in rows_of(later) if row.startswith("| sink killed |"))
    assert sink_row.startswith("| sink killed | 300 | 300 | 503: 2 |")
    assert all(row.rstrip(" |").endswith("mode") for row in rows_of(later)), "every row says when it was measured"


def test_rows_are_kept_verbatim_from_the_document() -> None:
    earlier = render([attack("replay")], command=COMMAND)
    kept = next(row for row in rows_of(earlier) if row.startswith("| replay |"))

    later = render([fault("broker killed", 10)], command=COMMAND, previous=earlier)

    assert kept in rows_of(later)
    assert later.count("### Input") == 1
