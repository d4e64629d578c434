"""Errors of the tools; :class:`ToolError` is their root."""

from __future__ import annotations

from hookbus.errors import HookbusError

__all__ = ["ConsoleError", "LocalServiceError", "ToolError"]


class ToolError(HookbusError):
    reason = "tool_error"


class LocalServiceError(ToolError):
    """A development service (the local Kafka broker or PostgreSQL) could not be set up or started."""

    reason = "local_service_failed"


class ConsoleError(ToolError):
    """The console cannot serve (its port is taken, its index cannot be opened)."""

    reason = "console_failed"
