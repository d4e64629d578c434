"""The root of every error hookbus raises.

Each package (``ingest``, ``normalizer``) has its own ``errors.py`` whose root derives from
:class:`HookbusError`, and so do the sinks' errors, part of the plugin contract in
:mod:`hookbus.sink`, so callers can catch one package or all of hookbus.
Every error carries a machine-readable ``reason`` and says whether trying again may help.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "HookbusError",
    "KafkaUnavailableError",
]


class HookbusError(Exception):
    """Base of all hookbus errors.

    ``reason`` is a stable snake_case token for machines (logs, dead-letter headers, HTTP
    bodies); the message is for people. ``retriable`` tells whether the same operation may
    succeed if simply tried again (a broker that is down) or never will (a bad payload).
    """

    reason: str = "hookbus_error"
    retriable: bool = False

    def __init__(self, detail: str, *, reason: str | None = None, retriable: bool | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason
        if retriable is not None:
            self.retriable = retriable


class ConfigError(HookbusError):
    """The configuration cannot be used. Raised at startup, never at the first request.

    ``str()`` is one line naming the file, the source and the key, ready for the terminal.
    """

    reason = "bad_config"

    def __init__(
        self,
        detail: str,
        *,
        file: str | None = None,
        source: str | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.file = file
        self.source = source
        self.key = key

    def located(self, *, file: str | None = None, source: str | None = None) -> ConfigError:
        """The same error with the file or source filled in where it was not yet known."""
        return ConfigError(
            self.detail,
            file=self.file or file,
            source=self.source or source,
            key=self.key,
        )

    def __str__(self) -> str:
        where = [self.file or "<config>"]
        if self.source is not None:
            where.append(f"source {self.source!r}")
        if self.key is not None:
            where.append(f"key {self.key!r}")
        return f"{': '.join(where)}: {self.detail}"


class KafkaUnavailableError(HookbusError):
    """The broker did not answer or acknowledge in time. Trying again later may succeed."""

    reason = "kafka_unavailable"
    retriable = True
