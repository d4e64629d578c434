"""Fixtures of the reliability tests: the report every scenario adds its numbers to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.report import (
    DOCUMENT,
    Finding,
    generated_part,
    render,
    report_wanted,
    update_document,
    write_json,
)

_FINDINGS = pytest.StashKey[list[Finding]]()
# What scripts/reliability runs (after scripts/bootstrap).
REPORT_COMMAND = "HOOKBUS_RELIABILITY_FULL=1 HOOKBUS_RELIABILITY_REPORT=1 pytest tests/reliability"


@pytest.fixture(scope="session")
def findings(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Finding]]:
    """Where tests put what they measured; kept as JSON in pytest's temporary directory."""
    recorded = pytestconfig.stash.setdefault(_FINDINGS, [])
    yield recorded
    write_json(tmp_path_factory.getbasetemp() / "reliability.json", recorded)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With HOOKBUS_RELIABILITY_REPORT=1, the measured rows replace theirs in the generated part of
    docs/reliability.md; the rows of scenarios this session did not run stay."""
    recorded = session.config.stash.get(_FINDINGS, [])
    if recorded and report_wanted():
        update_document(DOCUMENT, render(recorded, command=REPORT_COMMAND, previous=generated_part(DOCUMENT)))
