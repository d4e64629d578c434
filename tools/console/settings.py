"""The ``console:`` section of the configuration file.

::

    console:
      token: ${HOOKBUS_CONSOLE_TOKEN}     # required: the console refuses to start without one
      host: 127.0.0.1                     # never the gateway's public listener
      port: 8091
      index_path: ./var/console/index.sqlite3   # this instance's own index, or:
      index_dsn: ${HOOKBUS_CONSOLE_INDEX_DSN}   # one PostgreSQL index shared by every instance
      keep_days: 7                        # what the index keeps: it holds personal data
      sinks: [pg]                         # the sinks it shows (default: every one under sinks:)

The token is a :class:`~hookbus.settings.Secret` like a source's secrets: written as a
``${VAR}`` or ``${file:/path}`` reference, never in the file itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from hookbus.config import HookbusConfig
from hookbus.errors import ConfigError
from hookbus.settings import EXCLUSIVE_MINIMUM, MINIMUM, PARSE, Secret, parse_settings
from sinks.postgres import as_dsn

__all__ = ["DEFAULT_PORT", "MIN_TOKEN_CHARS", "ConsoleSettings", "console_settings", "watched_sinks"]

DEFAULT_PORT: Final = 8091
MIN_TOKEN_CHARS: Final = 16
"""Shorter tokens are refused: the token is all that stands between the network and personal data."""
SECONDS_PER_DAY: Final = 86_400


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """How ``hookbus console`` serves and what its index keeps."""

    token: Secret
    """What a user gives to sign in (``Authorization: Bearer`` or the login form); at least 16 characters."""
    host: str = "127.0.0.1"
    """The console's own listener; loopback by default."""
    port: int = field(default=DEFAULT_PORT, metadata={MINIMUM: 1})
    index_path: str = "./var/console/index.sqlite3"
    """The SQLite file of this console instance's index (created with its directory); unused with ``index_dsn``."""
    index_dsn: Secret | None = field(default=None, metadata={PARSE: as_dsn})
    """A PostgreSQL database for the index instead, shared by every console instance (one of them
    feeds it at a time); a secret, like a sink's DSN, because it usually holds the password."""
    keep_days: float = field(default=7.0, metadata={EXCLUSIVE_MINIMUM: 0})
    """Index rows older than this are pruned (Kafka's own retention applies to the records themselves)."""
    sinks: tuple[str, ...] = ()
    """The ``sinks:`` instances whose dead letters and lag the console shows; empty: every one configured."""

    def __post_init__(self) -> None:
        if len(self.token.value) < MIN_TOKEN_CHARS:
            raise ConfigError(f"must be at least {MIN_TOKEN_CHARS} characters", key="token")

    @property
    def index_location(self) -> str:
        """Where the index is, for logs: the SQLite file, or that it is in PostgreSQL (never the DSN)."""
        return "postgresql" if self.index_dsn is not None else self.index_path

    @property
    def keep_seconds(self) -> float:
        return self.keep_days * SECONDS_PER_DAY


def console_settings(config: HookbusConfig) -> ConsoleSettings:
    """The checked ``console:`` section; :class:`ConfigError` when it is absent or wrong."""
    try:
        settings = parse_settings(ConsoleSettings, config.console, prefix="console")
        unknown = sorted(set(settings.sinks) - set(config.sinks))
        if unknown:
            raise ConfigError(f"no sink named {unknown[0]!r} under sinks:", key="console.sinks")
    except ConfigError as exc:
        raise exc.located(file=config.path) from exc
    return settings


def watched_sinks(config: HookbusConfig) -> list[str]:
    """The sinks the console shows: ``console.sinks``, or every configured one."""
    return sorted(console_settings(config).sinks or config.sinks)
