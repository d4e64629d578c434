"""Offerte Adviseur (lead marketplace).

Body: ``{id, type, payload}``; the first part of ``type`` names the payload's resource
(``lead.sold`` carries a lead). The payload names its resource by ``<resource>_id``
(``lead_id``, ``invoice_id``), or ``id`` as in the documentation's first example; ids are
numbers, carried as strings. The envelope has no event time.
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
    split_dotted_type,
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


def _resource_id(payload: JsonObject, resource: str) -> str:
    for field in (f"{resource}_id", "id"):
        if payload.get(field) is not None:
            return id_text(payload[field], f"payload.{field}")
    raise missing(f"payload.{resource}_id")


def map_event(raw: RawEvent) -> Mapped:
    body = parse_json_object(raw.body)
    event_id = require_text(body, "id")
    event_type = require_text(body, "type")
    payload = require_object(body, "payload")
    resource, action = split_dotted_type(event_type)
    # An undotted type still names its payload's resource, as the documentation reads.
    resource_name = resource if resource is not None else event_type
    resource_id = _resource_id(payload, resource_name)
    parents = {
        parent: id_text(payload[f"{parent}_id"], f"payload.{parent}_id")
        for parent in _PARENTS.get(resource_name, ())
        if payload.get(f"{parent}_id") is not None
    }
    return Mapped(
        type=f"offerte_adviseur.{event_type}",
        known_type=event_type in KNOWN_TYPES,
        local_id=event_id,
        partition_key=f"offerte_adviseur:{resource_name}:{resource_id}",
        subject=resource_id,
        data=event_data(
            resource=resource,
            action=action,
            resource_id=resource_id,
            parents=parents,
            resource_object=payload,
            extra=leftovers(body, ("id", "type", "payload")),
        ),
    )


MAPPER = Mapper(
    bind=without_options(map_event),
    known_types={name: f"offerte_adviseur.{name}" for name in KNOWN_TYPES},
)
