"""The reliability report: what each fault and attack measured, as JSON and as tables in docs/reliability.md.

Tests add a :class:`Finding` each; at the end of the session the findings are written as
JSON into pytest's temporary directory, and, only when ``HOOKBUS_RELIABILITY_REPORT=1``
(``scripts/reliability``), as Markdown tables between the markers of docs/reliability.md.
CI never rewrites a tracked file.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.reliability.harness import FULL_MODE

REPORT_ENV = "HOOKBUS_RELIABILITY_REPORT"
BEGIN_MARKER = "<!-- reliability:begin -->"
END_MARKER = "<!-- reliability:end -->"
DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
FAULTS = "faults"
ATTACKS = "attacks"
OUTAGES = "outages"
PROPERTIES = "properties"


@dataclass(frozen=True, slots=True)
class Finding:
    """One fault scenario or one kind of attack, and what was measured."""

    table: str
    name: str
    numbers: Mapping[str, Any]
    problems: tuple[str, ...]

    @property
    def result(self) -> str:
        return "; ".join(self.problems) if self.problems else "ok"


def report_wanted() -> bool:
    return os.environ.get(REPORT_ENV) == "1"


def _refusals(refusals: Mapping[str, int]) -> str:
    return ", ".join(f"{status}: {count}" for status, count in refusals.items()) or "none"


def _fault_row(finding: Finding) -> list[Any]:
    numbers = finding.numbers
    return [
        finding.name,
        numbers["sent"],
        numbers["answered_2xx"],
        _refusals(numbers["refusals"]),
        numbers["in_topic"],
        numbers["redelivered"],
        numbers["rows"],
        numbers["duplicates"],
        numbers["lost"],
        numbers["other_5xx"],
        numbers["arrived_without_2xx"],
        finding.result,
    ]


def _recovery_row(finding: Finding) -> list[Any]:
    numbers = finding.numbers
    return [
        finding.name,
        ", ".join(numbers["struck"]),
        numbers["answered_503"],
        numbers["answered_from_spool"],
        numbers["recovery_seconds"],
        numbers["caught_up_seconds"],
    ]


def _attack_row(finding: Finding) -> list[Any]:
    numbers = finding.numbers
    return [
        finding.name,
        numbers["requests"],
        _refusals(numbers["statuses"]),
        numbers["server_errors"],
        numbers["refusals_without_json_error"],
        numbers.get("rss_growth_kib", "-"),
        finding.result,
    ]


def _outage_row(finding: Finding) -> list[Any]:
    numbers = finding.numbers
    return [
        finding.name,
        numbers["outage_seconds"],
        numbers["produced"],
        f"{numbers['retry_rounds']} (bound {numbers['retry_rounds_bound']}, busy loop ~{numbers['busy_loop_rounds']})",
        numbers.get("requests_during_outage", "-"),
        numbers["cpu_seconds"],
        f"{numbers['rss_growth_kib']} ({numbers['produced_during_outage_kib']})",
        numbers["delivered"],
        numbers["missing"],
        numbers["duplicates"],
        numbers["catch_up_seconds"],
        finding.result,
    ]


def _property_row(finding: Finding) -> list[Any]:
    numbers = finding.numbers
    valid_after = f"{numbers['valid_after_delivered']} of {numbers['valid_after_sent']}"
    if numbers["valid_after_seconds"] is not None:
        valid_after += f" in {numbers['valid_after_seconds']} s"
    return [
        finding.name,
        f"{numbers['generated']} ({numbers['big_bodies']} big) + {numbers['valid_after_sent']} valid",
        _refusals(numbers["statuses"]),
        numbers["answered_2xx"],
        numbers["rows"],
        f"{numbers['dead_letters']} ({numbers['sink_dead_letters']} by the sink)",
        _refusals(numbers["dead_letter_reasons"]),
        numbers["lost"],
        numbers["duplicates"],
        numbers["without_reason"],
        numbers["settle_seconds"],
        valid_after,
        finding.result,
    ]


@dataclass(frozen=True, slots=True)
class _Table:
    """One table of the report: which findings it shows, and how."""

    heading: str
    columns: tuple[str, ...]
    row: Callable[[Finding], list[Any]]
    selects: Callable[[Finding], bool]


def _of(table: str) -> Callable[[Finding], bool]:
    return lambda finding: finding.table == table


_TABLES = (
    _Table(
        "Faults",
        (
            "fault",
            "events sent",
            "answered 2xx",
            "refused (status: attempts)",
            "in events topic",
            "extra copies in topic",
            "rows",
            "duplicate rows",
            "lost",
            "5xx other than 503",
            "stored without a 2xx",
            "result",
        ),
        _fault_row,
        _of(FAULTS),
    ),
    _Table(
        "Cluster faults: answers and catch-up",
        (
            "fault",
            "struck",
            "503 answers",
            "2xx from a spool",
            "s until every source is answered 2xx at once",
            "s after the stream until every 2xx is a row",
        ),
        _recovery_row,
        lambda finding: finding.table == FAULTS and "recovery_seconds" in finding.numbers,
    ),
    _Table(
        "Destination outages",
        (
            "outage",
            "seconds",
            "events produced",
            "sink retry rounds during it (backoff bound, busy loop)",
            "requests reaching the destination during it",
            "sink CPU during it (s)",
            "sink RSS growth KiB (KiB produced meanwhile)",
            "delivered after",
            "missing",
            "duplicates",
            "catch-up (s)",
            "result",
        ),
        _outage_row,
        _of(OUTAGES),
    ),
    _Table(
        "Pipeline property",
        (
            "run",
            "requests generated",
            "answers (status: count)",
            "answered 2xx",
            "rows",
            "dead letters",
            "dead-letter reasons (stage/reason: count)",
            "lost",
            "more than one row or dead letter",
            "dead letters without a reason",
            "all ended after (s)",
            "valid event per source after them",
            "result",
        ),
        _property_row,
        _of(PROPERTIES),
    ),
    _Table(
        "Input",
        (
            "attack",
            "requests",
            "answers (status: count)",
            "5xx",
            "refusals without a JSON `error`",
            "gateway RSS growth (KiB)",
            "result",
        ),
        _attack_row,
        _of(ATTACKS),
    ),
)
MEASURED_COLUMN = "measured"


def _table_row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _row_name(line: str) -> str:
    return line.removeprefix("|").split("|", 1)[0].strip()


def _previous_rows(generated: str) -> dict[str, list[str]]:
    """The rows of each table of an earlier report, by heading, in their order."""
    rows: dict[str, list[str]] = {}
    heading = None
    for line in generated.splitlines():
        if line.startswith("### "):
            heading = line.removeprefix("### ").strip()
            rows[heading] = []
        elif heading is not None and line.startswith("| ") and not line.startswith("|---"):
            rows[heading].append(line)
    # The first row under a heading is the table's header.
    return {heading: lines[1:] for heading, lines in rows.items()}


def render(findings: Sequence[Finding], *, command: str, previous: str = "") -> str:
    """The generated part of docs/reliability.md: this run's rows, and the rows of an earlier report
    (``previous``) that this run did not measure again, so a run of some scenarios (``-k``) keeps the rest.
    Every row says when and in which mode it was measured."""
    measured = f"{time.strftime('%Y-%m-%d')}, {'full' if FULL_MODE else 'CI'} mode"
    earlier = _previous_rows(previous)
    lines = [
        BEGIN_MARKER,
        "<!-- Generated by tests/reliability (scripts/reliability); do not edit by hand. -->",
        "",
        f"Measured with `{command}` on {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        "each row says when, and in which mode (a run of some scenarios keeps the other rows).",
        "",
    ]
    for table in _TABLES:
        fresh = {
            finding.name: _table_row([*table.row(finding), measured]) for finding in findings if table.selects(finding)
        }
        kept = [line for line in earlier.get(table.heading, []) if _row_name(line) not in fresh]
        if not fresh and not kept:
            continue
        lines += [
            f"### {table.heading}",
            "",
            _table_row([*table.columns, MEASURED_COLUMN]),
            "|" + "---|" * (len(table.columns) + 1),
            *kept,
            *fresh.values(),
            "",
        ]
    lines.append(END_MARKER)
    return "\n".join(lines)


def generated_part(document: Path) -> str:
    """What stands between the markers of ``document`` now."""
    _, begin, rest = document.read_text(encoding="utf-8").partition(BEGIN_MARKER)
    generated, end, _ = rest.partition(END_MARKER)
    if not begin or not end:
        raise ValueError(f"{document} lacks the markers {BEGIN_MARKER} / {END_MARKER}")
    return generated


def update_document(document: Path, generated: str) -> None:
    """Replace what stands between the markers of ``document`` with ``generated``."""
    text = document.read_text(encoding="utf-8")
    before, begin, rest = text.partition(BEGIN_MARKER)
    _, end, after = rest.partition(END_MARKER)
    if not begin or not end:
        raise ValueError(f"{document} lacks the markers {BEGIN_MARKER} / {END_MARKER}")
    document.write_text(before + generated + after, encoding="utf-8")


def write_json(path: Path, findings: Sequence[Finding]) -> None:
    path.write_bytes(orjson.dumps([asdict(finding) for finding in findings], option=orjson.OPT_INDENT_2))
