"""The example gateway configuration loads and passes the gateway's startup checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookbus.config import load_config
from ingest.decision import check_sources

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway.yaml"


def test_example_config_passes_the_startup_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OFFICERND_SECRET", "OCTOBER_SECRET", "OCTAMILE_API_KEY"):
        monkeypatch.setenv(name, f"example-{name.lower()}")
    config = load_config(EXAMPLE)
    check_sources(config.sources, file=config.path)
    assert [source.name for source in config.sources] == ["officernd", "october", "octamile"]
    officernd = config.source("officernd")
    assert officernd is not None
    assert len(officernd.secrets) == 1
