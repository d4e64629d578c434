"""Errors of the sinks; :class:`SinkError` is their root. ``retriable`` decides retry or dead letter."""

from __future__ import annotations

from hookbus.errors import HookbusError


class SinkError(HookbusError):
    reason = "sink_error"


class SinkUnavailableError(SinkError):
    """The destination cannot be reached now; the same batch may succeed later."""

    reason = "sink_unavailable"
    retriable = True


class EventRejectedError(SinkError):
    """The destination refuses this event for good; it goes to the sink's dead-letter topic."""

    reason = "event_rejected"
