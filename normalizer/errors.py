"""Errors of the normalizer; :class:`NormalizerError` is their root.

Every error names the ``stage`` it happened in and a machine-readable ``reason``; both go
into the dead-letter record's headers, so a dead letter says why it is there. A mapper's
own error, :class:`hookbus.mapping.MappingError`, belongs to the provider contract.
"""

from __future__ import annotations

from hookbus.errors import HookbusError
from hookbus.mapping import MappingError


class NormalizerError(HookbusError):
    reason = "normalizer_error"
    stage = "normalize"


class UnknownSourceError(NormalizerError):
    """The raw event names a source the configuration does not have (any more)."""

    reason = "unknown_source"
    stage = "route"


class SchemaViolationError(NormalizerError):
    """The mapped event does not satisfy the canonical schema or its provider's data schema."""

    reason = "schema_violation"
    stage = "validate"


class DeadLetterError(NormalizerError):
    """A record of the dead-letter topic lacks the ``hookbus-dlq-*`` headers that make it a dead letter."""

    reason = "not_a_dead_letter"
    stage = "replay"


class ReplayError(NormalizerError):
    """``hookbus replay`` was given contradictory options, or a partition the topic does not have."""

    reason = "bad_replay_request"
    stage = "replay"


class DumpRecordError(NormalizerError):
    """A line of a raw-event dump (``hookbus normalize``, ``hookbus replay``) is not a dumped record."""

    reason = "bad_dump_record"
    stage = "read"


NORMALIZE_ERRORS = (NormalizerError, MappingError)
"""What mapping one event may raise: the normalizer's own errors and a provider mapper's."""
