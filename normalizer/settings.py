"""The ``normalizer:`` section of the configuration file.

Every key is optional; :class:`NormalizerSettings` documents each (``hookbus config schema``
shows them to an editor). A bad value or an unknown key raises
:class:`~hookbus.errors.ConfigError` naming ``normalizer.<key>``, at startup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hookbus.cloudevent import Mode
from hookbus.errors import ConfigError
from hookbus.settings import EXCLUSIVE_MINIMUM, MINIMUM, PARSE, as_str
from hookbus.settings import parse_settings as read_section

DEFAULT_GROUP_ID = "hookbus-normalizer"
_AT_LEAST_ONE = {MINIMUM: 1}


def _group_id(value: Any, key: str) -> str:
    text = as_str(value, key).strip()
    if not text:
        raise ConfigError("is empty", key=key)
    return text


@dataclass(frozen=True, slots=True)
class NormalizerSettings:
    """How the normalizer service consumes, publishes and retries."""

    group_id: str = field(default=DEFAULT_GROUP_ID, metadata={PARSE: _group_id})
    """The consumer group on the raw topic."""
    mode: Mode = Mode.BINARY
    """CloudEvents Kafka binding: binary (ce_* headers, data as value) or structured."""
    batch_size: int = field(default=500, metadata=_AT_LEAST_ONE)
    """Records taken from the raw topic at most per batch."""
    batch_timeout_ms: int = field(default=500, metadata=_AT_LEAST_ONE)
    """How long to wait for a batch to fill."""
    max_attempts: int = field(default=3, metadata=_AT_LEAST_ONE)
    """Tries before a record that keeps failing unexpectedly is dead-lettered."""
    retry_backoff_ms: int = field(default=100, metadata=_AT_LEAST_ONE)
    """First wait before trying Kafka again; doubles up to retry_backoff_max_ms."""
    retry_backoff_max_ms: int = field(default=10_000, metadata=_AT_LEAST_ONE)
    stats_interval_seconds: float = field(default=10.0, metadata={EXCLUSIVE_MINIMUM: 0})
    """How often the counts per type and per reason are logged."""

    def __post_init__(self) -> None:
        if self.retry_backoff_max_ms < self.retry_backoff_ms:
            raise ConfigError("must not be less than retry_backoff_ms", key="retry_backoff_max_ms")


def parse_settings(raw: Mapping[str, Any] | None, *, path: str = "<config>") -> NormalizerSettings:
    """The settings from the raw ``normalizer:`` mapping of the file at ``path``."""
    try:
        return read_section(NormalizerSettings, raw if raw is not None else {}, prefix="normalizer")
    except ConfigError as exc:
        raise exc.located(file=path) from exc
