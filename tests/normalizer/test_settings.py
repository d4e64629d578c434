"""The ``normalizer:`` section: defaults, every key, and an error naming the key for each bad value."""

from __future__ import annotations

from typing import Any

import pytest

from hookbus.cloudevent import Mode
from hookbus.config import parse_config
from hookbus.errors import ConfigError
from normalizer.settings import DEFAULT_GROUP_ID, NormalizerSettings, parse_settings


def test_an_absent_section_gives_the_defaults() -> None:
    settings = parse_settings(parse_config({}).normalizer)

    assert settings == NormalizerSettings()
    assert settings.group_id == DEFAULT_GROUP_ID == "hookbus-normalizer"
    assert settings.mode is Mode.BINARY


def test_every_key_is_read() -> None:
    raw = {
        "group_id": "normalizer-eu",
        "mode": "Structured",
        "batch_size": "50",
        "batch_timeout_ms": 20,
        "max_attempts": 5,
        "retry_backoff_ms": 10,
        "retry_backoff_max_ms": 10,
        "stats_interval_seconds": 0.5,
    }

    settings = parse_settings(parse_config({"normalizer": raw}).normalizer)

    assert settings == NormalizerSettings(
        group_id="normalizer-eu",
        mode=Mode.STRUCTURED,
        batch_size=50,
        batch_timeout_ms=20,
        max_attempts=5,
        retry_backoff_ms=10,
        retry_backoff_max_ms=10,
        stats_interval_seconds=0.5,
    )


def test_environment_references_are_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NORMALIZER_GROUP", "from-the-environment")

    config = parse_config({"normalizer": {"group_id": "${NORMALIZER_GROUP}"}})

    assert parse_settings(config.normalizer).group_id == "from-the-environment"


@pytest.mark.parametrize(
    ("raw", "key", "detail"),
    [
        ({"groupid": "x"}, "normalizer.groupid", "unknown key"),
        ({"group_id": "  "}, "normalizer.group_id", "is empty"),
        ({"mode": "avro"}, "normalizer.mode", "must be binary or structured"),
        ({"mode": ["binary"]}, "normalizer.mode", "must be a string"),
        ({"batch_size": 0}, "normalizer.batch_size", "must be at least 1"),
        ({"batch_size": "many"}, "normalizer.batch_size", "must be a whole number"),
        ({"batch_timeout_ms": -5}, "normalizer.batch_timeout_ms", "must not be negative"),
        ({"max_attempts": True}, "normalizer.max_attempts", "must be a whole number"),
        ({"retry_backoff_ms": 0}, "normalizer.retry_backoff_ms", "must be at least 1"),
        ({"retry_backoff_ms": 500, "retry_backoff_max_ms": 100}, "normalizer.retry_backoff_max_ms", "less than"),
        ({"stats_interval_seconds": 0}, "normalizer.stats_interval_seconds", "greater than 0"),
    ],
)
def test_a_bad_value_names_its_key(raw: dict[str, Any], key: str, detail: str) -> None:
    config = parse_config({"normalizer": raw}, path="hookbus.yaml")

    with pytest.raises(ConfigError) as caught:
        parse_settings(config.normalizer, path=config.path)

    assert caught.value.key == key
    assert caught.value.file == "hookbus.yaml"
    assert detail in caught.value.detail
    assert str(caught.value).startswith(f"hookbus.yaml: key {key!r}: ")


def test_a_section_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(["binary"])  # type: ignore[arg-type]

    assert caught.value.key == "normalizer"
