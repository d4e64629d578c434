"""The runner's side of a sink: discovery through entry points, and a section checked at startup."""

from __future__ import annotations

import pytest

from hookbus.errors import ConfigError
from hookbus.sink import SinkType
from sinks.configure import RunnerSettings, configure_sink, load_sink_type, sink_types
from sinks.http_forward import HttpForwardSettings
from sinks.postgres import PostgresSettings
from tests.sinks.helpers import config_with, event

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_built_in_sinks_and_the_example_plugin_are_found_through_entry_points() -> None:
    found = sink_types()
    assert {"postgres", "sqlite", "http", "kafka", "jsonl"} <= set(found)
    for name in ("postgres", "sqlite", "http", "kafka", "jsonl"):
        sink_type = load_sink_type(found[name])
        assert isinstance(sink_type, SinkType)
        assert sink_type.name == name


def test_a_section_becomes_runner_settings_with_defaults_and_the_sinks_own_settings() -> None:
    config = config_with({"archive": {"type": "postgres", "dsn": "postgresql://db/x", "batch_size": 50}})
    configured = configure_sink(config, "archive")
    assert configured.runner == RunnerSettings(type="postgres", batch_size=50)
    assert configured.group_id == "hookbus-sink-archive"
    assert configured.dead_letter_topic == f"{config.kafka.events_topic}.dlq.archive"
    assert isinstance(configured.settings, PostgresSettings)
    assert configured.settings.table == "hookbus_events"
    assert repr(configured.settings.dsn) == "Secret('***')"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"type": "postgres", "dsn": "postgresql://db/x", "tabel": "x"}, "sinks.archive.tabel"),
        ({"type": "postgres"}, "sinks.archive.dsn"),
        ({"type": "postgres", "dsn": "postgresql://db/x", "table": "events; DROP TABLE x"}, "sinks.archive.table"),
        ({"type": "postgres", "dsn": "postgresql://db/x", "batch_size": 0}, "sinks.archive.batch_size"),
        ({"type": "postgres", "dsn": "postgresql://db/x", "pool_max_size": "many"}, "sinks.archive.pool_max_size"),
        ({"type": "carrier-pigeon"}, "sinks.archive.type"),
        ({"type": "http", "url": "ftp://example.com/", "secret": SECRET}, "sinks.archive.url"),
        ({"type": "http", "url": "https://example.com/", "secret": "s3cret"}, "sinks.archive.secret"),
        ({"type": "http", "url": "http://127.0.0.1:9/", "secret": SECRET}, "sinks.archive.url"),
        ({"type": "http", "url": "https://example.com/", "secret": SECRET, "mode": "batched"}, "sinks.archive.mode"),
        ({"type": "kafka", "routes": [{"topic": "a", "typez": ["x.*"]}]}, "sinks.archive.routes[0].typez"),
        # Settings that can never work fail here, not on every batch.
        (
            {"type": "http", "url": "http://127.1/", "secret": SECRET, "allow_private_destinations": True},
            "sinks.archive.url",
        ),
        ({"type": "http", "url": "http://2130706433/", "secret": SECRET}, "sinks.archive.url"),
        ({"type": "http", "url": "http://[::1/", "secret": SECRET}, "sinks.archive.url"),
        ({"type": "http", "url": "http://0x7f.1/", "secret": SECRET}, "sinks.archive.url"),
        ({"type": "http", "url": "http://017700000001/", "secret": SECRET}, "sinks.archive.url"),
        ({"type": "http", "url": "https://example.com:99999/", "secret": SECRET}, "sinks.archive.url"),
        ({"type": "http", "url": "https://a..b/", "secret": SECRET}, "sinks.archive.url"),
        ({"type": "http", "url": "https://exa mple.com/", "secret": SECRET}, "sinks.archive.url"),
        (
            {"type": "http", "url": "https://example.com/", "secret": SECRET, "timeout_seconds": 0},
            "sinks.archive.timeout_seconds",
        ),
        (
            {"type": "http", "url": "https://example.com/", "secret": SECRET, "headers": {"x bad": "1"}},
            "sinks.archive.headers",
        ),
        (
            {"type": "http", "url": "https://example.com/", "secret": SECRET, "headers": {"x-a": "1\r\nx: 2"}},
            "sinks.archive.headers",
        ),
        ({"type": "postgres", "dsn": "mysql://db/x"}, "sinks.archive.dsn"),
        ({"type": "postgres", "dsn": "postgresql://u:p@db:notaport/x"}, "sinks.archive.dsn"),
        ({"type": "postgres", "dsn": "postgresql://db:70000/x"}, "sinks.archive.dsn"),
        ({"type": "postgres", "dsn": "postgresql://db/x?sslmode=sometimes"}, "sinks.archive.dsn"),
        ({"type": "postgres", "dsn": "postgresql://db/x", "pool_max_size": 0}, "sinks.archive.pool_max_size"),
        (
            {"type": "postgres", "dsn": "postgresql://db/x", "command_timeout_seconds": -1},
            "sinks.archive.command_timeout_seconds",
        ),
        ({"type": "sqlite", "busy_timeout_seconds": -1}, "sinks.archive.busy_timeout_seconds"),
        ({"type": "kafka", "routes": []}, "sinks.archive.routes"),
    ],
)
def test_a_bad_section_is_a_config_error_naming_the_key(section: dict[str, object], key: str) -> None:
    config = config_with({"archive": section})
    with pytest.raises(ConfigError) as caught:
        configure_sink(config, "archive")
    assert caught.value.key == key
    assert caught.value.file == "test.yaml"


def test_a_bad_dsn_is_reported_without_its_password() -> None:
    config = config_with({"archive": {"type": "postgres", "dsn": "postgresql://u:hunter2@db:port-hunter2/x"}})
    with pytest.raises(ConfigError) as caught:
        configure_sink(config, "archive")
    assert caught.value.key == "sinks.archive.dsn"
    assert "hunter2" not in str(caught.value)


def test_an_unknown_instance_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no sink named 'missing'"):
        configure_sink(config_with({}), "missing")


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks",
        "https://hooks.example.com:8443/a?b=c",
        "http://my_service:8080/",
        "http://[2001:db8::1]/",
    ],
)
def test_a_url_aiohttp_takes_is_accepted(url: str) -> None:
    section = {"type": "http", "url": url, "secret": SECRET, "allow_private_destinations": True}
    assert configure_sink(config_with({"hook": section}), "hook").settings.url == url


def test_a_loopback_destination_is_accepted_when_allowed() -> None:
    config = config_with(
        {"hook": {"type": "http", "url": "http://127.0.0.1:9/", "secret": SECRET, "allow_private_destinations": True}}
    )
    settings = configure_sink(config, "hook").settings
    assert isinstance(settings, HttpForwardSettings)
    assert settings.allow_private_destinations


def test_filters_are_globs_on_type_and_source() -> None:
    settings = RunnerSettings(type="x", types=("officernd.invoice.*", "october.*"), sources=("hookbus/officernd-*",))
    assert settings.accepts(event(1, type="officernd.invoice.paid"))
    assert not settings.accepts(event(1, type="officernd.member.created"))
    assert not settings.accepts(event(1, type="officernd.invoice.paid", source="hookbus/other"))
    assert RunnerSettings(type="x").accepts(event(1, type="anything.at.all", source="anywhere"))
