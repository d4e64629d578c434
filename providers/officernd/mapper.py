"""OfficeRnD (coworking management).

Body: ``{event, eventType, data: {object, previousAttributes?, <parent>?}, createdAt}``.
Event types are ``resource[.subresource].operation``; a subresource event names its parent
in ``data.<parent>`` (``invoice.charge.updated`` carries ``data.invoice``), and is ordered
with its parent: an invoice and its charges share a partition key.

A documented type needs ``data.object._id`` (and its parent, for a subresource); an
undocumented one passes flagged with whatever it carries, even an empty ``data``. The
signature header's ``t=`` (when OfficeRnD sent the attempt) is the event's ``senttime``.
"""

from __future__ import annotations

from typing import Any

from hookbus.mapping import (
    JsonObject,
    Mapped,
    Mapper,
    bad_type,
    changes_from_previous,
    event_data,
    leftovers,
    optional_text,
    parse_json_object,
    provider_time,
    require_object,
    require_text,
    split_dotted_type,
    unix_time,
    without_options,
)
from hookbus.rawevent import RawEvent

from .verifier import SIGNATURE_HEADER

# The table "System event types" of OfficeRnD's documentation, resource by resource. The
# member.paymentdetails row names its operations but no events; they follow the pattern
# of every other row (and of company.paymentdetails).
_OPERATIONS: dict[str, tuple[str, ...]] = {
    "company": ("created", "updated", "removed"),
    "company.paymentdetails": ("created", "removed"),
    "member": ("created", "updated", "removed"),
    "member.paymentdetails": ("created", "removed"),
    "invoice": ("created", "updated", "removed"),
    "invoice.charge": ("created", "updated", "removed"),
    "invoice.allocation": ("created", "removed"),
    "fee": ("created", "updated", "removed"),
    "membership": ("created", "updated", "removed"),
    "booking": ("created", "updated", "removed"),
    "contract": ("created", "updated", "removed"),
    "ticket": ("created", "updated", "removed"),
    "integration": ("removed",),
    "pass": ("created", "updated"),
    "occupancyslot": ("created", "removed"),
}
KNOWN_TYPES: frozenset[str] = frozenset(
    f"{resource}.{operation}" for resource, operations in _OPERATIONS.items() for operation in operations
)
_ENVELOPE = ("event", "eventType", "data", "createdAt")


def _parents(data: JsonObject, resource: str | None, *, required: bool) -> dict[str, str]:
    """``{parent: id}`` of a subresource event, from ``data.<parent>``. A documented
    subresource event without its parent cannot be ordered, so it is not mapped; an
    undocumented one is passed on with whatever parent it names."""
    if resource is None or "." not in resource:
        return {}
    parent = resource.split(".", 1)[0]
    if required:
        return {parent: require_text(data, parent, "data.")}
    value = data.get(parent)
    return {parent: value} if isinstance(value, str) and value else {}


def _optional_object(document: JsonObject, key: str, where: str = "") -> JsonObject | None:
    if document.get(key) is None:
        return None
    return require_object(document, key, where)


def _sent_time(raw: RawEvent) -> str | None:
    """``t=`` of the signature header (the verifier checked it), as RFC 3339."""
    for part in raw.headers.get(SIGNATURE_HEADER, "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == "t":
            return unix_time(value.strip(), 1)
    return None


def _contents(body: JsonObject, known_type: bool) -> tuple[JsonObject, JsonObject | None, str | None]:
    """``(data, data.object, its _id)``: all required for a documented type; an undocumented
    one may lack any of them, but what it sends must be of the documented kind."""
    if known_type:
        data = require_object(body, "data")
        resource_object: Any = require_object(data, "object", "data.")
        return data, resource_object, require_text(resource_object, "_id", "data.object.")
    data = _optional_object(body, "data") or {}
    resource_object = _optional_object(data, "object", "data.")
    if resource_object is None:
        return data, None, None
    if resource_object.get("_id") is not None and not isinstance(resource_object["_id"], str):
        raise bad_type("data.object._id", "a string", resource_object["_id"])
    return data, resource_object, optional_text(resource_object, "_id", "data.object.")


def _key(event_type: str, resource: str | None, parents: dict[str, str], resource_id: str | None) -> str:
    # A subresource is ordered with its parent; anything else with itself (or, with no id,
    # with the other events of its resource).
    key = ":".join(next(iter(parents.items()))) if parents else resource or event_type
    if not parents and resource_id is not None:
        key = f"{key}:{resource_id}"
    return f"officernd:{key}"


RAW_KEY_MEMBERS = ("eventType", "data")
"""The top-level fields :func:`partition_key` reads."""


def partition_key(body: JsonObject) -> str:
    """The entity whose events keep their order, as :func:`map_event` keys the event."""
    event_type = require_text(body, "eventType")
    resource, _ = split_dotted_type(event_type)
    known_type = event_type in KNOWN_TYPES
    data, _, resource_id = _contents(body, known_type)
    return _key(event_type, resource, _parents(data, resource, required=known_type), resource_id)


def map_event(raw: RawEvent) -> Mapped:
    body = parse_json_object(raw.body)
    event_id = require_text(body, "event")
    event_type = require_text(body, "eventType")
    resource, action = split_dotted_type(event_type)
    known_type = event_type in KNOWN_TYPES
    data, resource_object, resource_id = _contents(body, known_type)
    parents = _parents(data, resource, required=known_type)
    changes = (
        changes_from_previous(require_object(data, "previousAttributes", "data."), resource_object or {})
        if data.get("previousAttributes") is not None
        else []
    )
    data_leftovers = leftovers(data, ("object", "previousAttributes", *parents))
    extra = leftovers(body, _ENVELOPE)
    if data_leftovers:
        extra["data"] = data_leftovers

    return Mapped(
        type=f"officernd.{event_type}",
        known_type=known_type,
        local_id=event_id,
        partition_key=_key(event_type, resource, parents, resource_id),
        subject=resource_id,
        sent_time=_sent_time(raw),
        time=provider_time(body["createdAt"], "createdAt") if body.get("createdAt") is not None else None,
        data=event_data(
            resource=resource,
            action=action,
            resource_id=resource_id,
            parents=parents,
            changes=changes,
            resource_object=resource_object,
            extra=extra,
        ),
    )


MAPPER = Mapper(
    bind=without_options(map_event),
    known_types={name: f"officernd.{name}" for name in sorted(KNOWN_TYPES)},
)
