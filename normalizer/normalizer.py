"""From raw event to canonical CloudEvent: route to the source's mapper, map, validate.

:class:`Normalizer` is built once from the configured sources: it binds each source's
mapper (checking its options) and compiles every schema then, so mapping an event parses
its body once and validates two compiled schemas, nothing more.

Validation has two validators per schema: jsonschema-rs (compiled, in Rust) answers
valid-or-not for every event; jsonschema, the reference, is asked only when that answer is
"invalid", for the dead-letter detail and the final word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from hookbus.cloudevent import CloudEvent, is_unicode
from hookbus.config import SourceConfig
from hookbus.mapping import Mapped, MappingError, SourceMapper
from hookbus.provider import provider, providers
from hookbus.rawevent import RawEvent, format_time
from hookbus.tracecontext import trace_context
from normalizer.errors import NORMALIZE_ERRORS, SchemaViolationError, UnknownSourceError
from schemas import cloudevent_schema, compiled_validator_for, data_schema, data_schema_id, validator_for

SOURCE_PREFIX = "/webhooks/"


@dataclass(frozen=True, slots=True)
class _Schema:
    """One schema, compiled for the hot path and for the reference's explanation."""

    compiled: jsonschema_rs.Validator
    reference: Draft202012Validator

    @classmethod
    def of(cls, schema: Mapping[str, Any]) -> _Schema:
        return cls(compiled_validator_for(schema), validator_for(schema))

    def check(self, instance: Any, what: str) -> None:
        try:
            valid = self.compiled.is_valid(instance)
        except (ValueError, OverflowError):
            # A value the compiled validator cannot take in (a number beyond its range):
            # the reference, which takes any Python number, decides.
            valid = False
        if valid:
            return
        # Cold path. The reference decides: the two differ only where their regex engines
        # do (Python's "$" also matches before a final newline), and then the verdict
        # stays what it always was.
        error = best_match(self.reference.iter_errors(instance))
        if error is not None:
            raise SchemaViolationError(f"{what} fails its schema: {_describe(error)}")


@dataclass(frozen=True, slots=True)
class _Route:
    source: SourceConfig
    map_event: SourceMapper
    dataschema: str
    data_schema: _Schema


class Normalizer:
    """Maps raw events of the configured sources to canonical CloudEvents.

    Raises :class:`~hookbus.errors.ConfigError` at construction when a source's options
    cannot be used; :meth:`normalize` raises only
    :data:`~normalizer.errors.NORMALIZE_ERRORS`: the normalizer's errors and a mapper's.
    """

    def __init__(self, sources: Mapping[str, SourceConfig]) -> None:
        self._event_schema = _Schema.of(cloudevent_schema())
        # Per event, data is validated once, by its provider's schema (which builds on the
        # common shape); the envelope's own validator skips it.
        envelope = {key: value for key, value in cloudevent_schema().items() if key != "$id"}
        envelope["properties"] = {**envelope["properties"], "data": {"type": "object"}}
        self._envelope_schema = _Schema.of(envelope)
        self._data_schemas = {name: _Schema.of(data_schema(name)) for name in providers()}
        self._routes = {
            name: _Route(
                source=source,
                map_event=provider(source.provider).mapper.bind(source),
                dataschema=data_schema_id(source.provider),
                data_schema=self._data_schemas[source.provider],
            )
            for name, source in sources.items()
        }

    def normalize(self, raw: RawEvent) -> CloudEvent:
        route = self._routes.get(raw.source)
        if route is None:
            raise UnknownSourceError(f"source {raw.source!r} is not configured")
        if route.source.provider != raw.provider:
            # The source was reconfigured for another provider since this was received:
            # mapping it with the new provider's mapper would be wrong either way.
            raise UnknownSourceError(
                f"source {raw.source!r} is now configured for {route.source.provider}, "
                f"the event was received for {raw.provider}",
                reason="provider_mismatch",
            )
        try:
            mapped = route.map_event(raw)
        except NORMALIZE_ERRORS:
            raise
        except Exception as exc:
            # A mapper bug must not stop the pipeline on one event: it is dead-lettered with
            # a reason of its own, and replayed once the mapper is fixed.
            detail = f"the {raw.provider} mapper failed: {type(exc).__name__}"
            raise MappingError(detail, reason="mapper_failed") from exc
        if not mapped.type.startswith(f"{raw.provider}."):
            # A provider names only its own types, so one provider's consumers never receive
            # another's events under their type.
            raise SchemaViolationError(f"the {raw.provider} mapper named a type outside {raw.provider}.*")
        event = self._event(raw, route, mapped)
        _check_attributes_are_text(event)
        route.data_schema.check(event.data, "data")
        self._envelope_schema.check(event.to_dict(), "event")
        return event

    def validate(self, event: CloudEvent) -> None:
        """Check an event against the canonical schema and its provider's data schema."""
        self._event_schema.check(event.to_dict(), "event")
        provider = event.extensions.get("provider")
        schema = self._data_schemas.get(str(provider))
        if schema is None:
            raise SchemaViolationError(f"no data schema for provider {provider!r}", reason="unknown_provider")
        schema.check(event.data, "data")

    @staticmethod
    def _event(raw: RawEvent, route: _Route, mapped: Mapped) -> CloudEvent:
        received = format_time(raw.received_at)
        extensions: dict[str, str | bool] = {
            "provider": raw.provider,
            "ingestid": raw.ingest_id,
            "receivedtime": received,
            "partitionkey": mapped.partition_key,
            "authmethod": raw.auth.value,
            "knowntype": mapped.known_type,
        }
        if mapped.sent_time is not None:
            extensions["senttime"] = mapped.sent_time
        extensions.update(trace_context(raw.headers))
        return CloudEvent(
            id=f"{raw.source}:{mapped.local_id}",
            source=SOURCE_PREFIX + raw.source,
            type=mapped.type,
            subject=mapped.subject,
            time=mapped.time if mapped.time is not None else received,
            dataschema=route.dataschema,
            data=mapped.data,
            extensions=extensions,
        )


def _check_attributes_are_text(event: CloudEvent) -> None:
    """Refuse an attribute that is not Unicode text: one holding a lone surrogate (a header
    byte that is not UTF-8, mapped into the type, say) cannot travel in a Kafka header or in
    JSON, and CloudEvents strings are Unicode. The data may hold such strings: it is encoded
    exactly, with escapes."""
    values = {
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "subject": event.subject,
        "time": event.time,
        **event.extensions,
    }
    for name, value in values.items():
        if isinstance(value, str) and not is_unicode(value):
            raise SchemaViolationError(f"attribute {name} is not Unicode text", reason="attribute_not_unicode")


def _describe(error: ValidationError) -> str:
    """Where and which rule, never the value: the value is body content."""
    where = "/" + "/".join(str(part) for part in error.absolute_path)
    return f"{where} violates {error.validator!r}"
