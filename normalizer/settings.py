"""The ``normalizer:`` section of the configuration file.

Every key is optional::

    normalizer:
      group_id: hookbus-normalizer   # the consumer group on the raw topic
      mode: binary                   # CloudEvents Kafka binding: binary (ce_* headers) or structured
      batch_size: 500                # records taken from the raw topic at most per batch
      batch_timeout_ms: 500          # how long to wait for a batch to fill
      max_attempts: 3                # tries before a record that keeps failing unexpectedly is dead-lettered
      retry_backoff_ms: 100          # first wait before trying Kafka again; doubles up to the cap
      retry_backoff_max_ms: 10000    # the cap
      stats_interval_seconds: 10     # how often the counts per type and per reason are logged

A bad value or an unknown key raises :class:`~hookbus.errors.ConfigError` naming
``normalizer.<key>``, at startup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hookbus.cloudevent import Mode
from hookbus.config import ConfigSection, as_float, as_int, as_str, parse_section
from hookbus.errors import ConfigError

DEFAULT_GROUP_ID = "hookbus-normalizer"


@dataclass(frozen=True, slots=True)
class NormalizerSettings:
    """How the normalizer service consumes, publishes and retries."""

    group_id: str = DEFAULT_GROUP_ID
    mode: Mode = Mode.BINARY
    batch_size: int = 500
    batch_timeout_ms: int = 500
    max_attempts: int = 3
    retry_backoff_ms: int = 100
    retry_backoff_max_ms: int = 10_000
    stats_interval_seconds: float = 10.0


def as_mode(value: Any, key: str) -> Mode:
    text = as_str(value, key).lower()
    try:
        return Mode(text)
    except ValueError as exc:
        raise ConfigError(f"must be binary or structured, not {text!r}", key=key) from exc


def _positive_int(value: Any, key: str) -> int:
    number = as_int(value, key)
    if number < 1:
        raise ConfigError("must be at least 1", key=key)
    return number


def _positive_float(value: Any, key: str) -> float:
    number = as_float(value, key)
    if number <= 0:
        raise ConfigError("must be greater than 0", key=key)
    return number


def _group_id(value: Any, key: str) -> str:
    text = as_str(value, key).strip()
    if not text:
        raise ConfigError("is empty", key=key)
    return text


def parse_settings(raw: Mapping[str, Any] | None, *, path: str = "<config>") -> NormalizerSettings:
    """The settings from the raw ``normalizer:`` mapping of the file at ``path``."""
    default = NormalizerSettings()

    def parse(section: ConfigSection) -> NormalizerSettings:
        settings = NormalizerSettings(
            group_id=section.get("group_id", _group_id, default.group_id),
            mode=section.get("mode", as_mode, default.mode),
            batch_size=section.get("batch_size", _positive_int, default.batch_size),
            batch_timeout_ms=section.get("batch_timeout_ms", _positive_int, default.batch_timeout_ms),
            max_attempts=section.get("max_attempts", _positive_int, default.max_attempts),
            retry_backoff_ms=section.get("retry_backoff_ms", _positive_int, default.retry_backoff_ms),
            retry_backoff_max_ms=section.get("retry_backoff_max_ms", _positive_int, default.retry_backoff_max_ms),
            stats_interval_seconds=section.get(
                "stats_interval_seconds", _positive_float, default.stats_interval_seconds
            ),
        )
        if settings.retry_backoff_max_ms < settings.retry_backoff_ms:
            raise ConfigError("must not be less than retry_backoff_ms", key="retry_backoff_max_ms")
        return settings

    try:
        return parse_section("normalizer", parse, raw if raw is not None else {})
    except ConfigError as exc:
        raise exc.located(file=path) from exc
