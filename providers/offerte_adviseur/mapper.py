"""Offerte Adviseur (lead marketplace).

Body: ``{id, type, payload}``; the first part of ``type`` names the payload's resource
(``lead.sold`` carries a lead). The payload names its resource by ``<resource>_id``
(``lead_id``, ``invoice_id``), or ``id`` as in the documentation's first example; ids are
numbers, carried as strings. The envelope has no event time.

The type reads as the documentation says: its first part is the resource, the rest the
action (``lead.status.changed`` is a lead's ``status.changed``). A documented type needs
its payload and resource id; an undocumented one passes flagged without them.
"""

from __future__ import annotations

from hookbus.mapping import (
    JsonObject,
    Mapped,
    Mapper,
    event_data,
    id_text,
    leftovers,
    missing,
    parse_json_object,
    require_object,
    require_text,
    without_options,
)
from hookbus.rawevent import RawEvent

KNOWN_TYPES: tuple[str, ...] = (
    "lead.created",
    "lead.sold",
    "lead.invoiced",
    "lead.paid",
    "invoice.created",
    "invoice.paid",
)
# An invoice is for a lead (lead.invoiced: "an invoice was created for a lead").
_PARENTS: dict[str, tuple[str, ...]] = {"invoice": ("lead",)}


def _resource_id(payload: JsonObject, resource: str, *, required: bool) -> str | None:
    for field in (f"{resource}_id", "id"):
        if payload.get(field) is not None:
            return id_text(payload[field], f"payload.{field}")
    if required:
        raise missing(f"payload.{resource}_id")
    return None


def _resource_name(event_type: str) -> str:
    # An undotted type still names its payload's resource, as the documentation reads.
    return event_type.partition(".")[0] or event_type


def _key(resource_name: str, resource_id: str | None) -> str:
    return ":".join(part for part in ("offerte_adviseur", resource_name, resource_id) if part is not None)


def _payload(body: JsonObject, known_type: bool) -> tuple[bool, JsonObject]:
    """Whether a payload was sent, and the payload (empty when not): a documented type needs one."""
    sent_payload = known_type or body.get("payload") is not None
    return sent_payload, require_object(body, "payload") if sent_payload else {}


RAW_KEY_MEMBERS = ("type", "payload")
"""The top-level fields :func:`partition_key` reads."""


def partition_key(body: JsonObject) -> str:
    """The entity whose events keep their order, as :func:`map_event` keys the event."""
    event_type = require_text(body, "type")
    known_type = event_type in KNOWN_TYPES
    _, payload = _payload(body, known_type)
    resource_name = _resource_name(event_type)
    return _key(resource_name, _resource_id(payload, resource_name, required=known_type))


def map_event(raw: RawEvent) -> Mapped:
    body = parse_json_object(raw.body)
    event_id = require_text(body, "id")
    event_type = require_text(body, "type")
    known_type = event_type in KNOWN_TYPES
    sent_payload, payload = _payload(body, known_type)
    head, _, tail = event_type.partition(".")
    resource, action = (head, tail) if head and tail else (None, None)
    resource_name = _resource_name(event_type)
    resource_id = _resource_id(payload, resource_name, required=known_type)
    parents = {
        parent: id_text(payload[f"{parent}_id"], f"payload.{parent}_id")
        for parent in _PARENTS.get(resource_name, ())
        if payload.get(f"{parent}_id") is not None
    }
    return Mapped(
        type=f"offerte_adviseur.{event_type}",
        known_type=known_type,
        local_id=event_id,
        partition_key=_key(resource_name, resource_id),
        subject=resource_id,
        data=event_data(
            resource=resource,
            action=action,
            resource_id=resource_id,
            parents=parents,
            resource_object=payload if sent_payload else None,
            extra=leftovers(body, ("id", "type", "payload")),
        ),
    )


MAPPER = Mapper(
    bind=without_options(map_event),
    known_types={name: f"offerte_adviseur.{name}" for name in KNOWN_TYPES},
)
