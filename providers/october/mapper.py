"""October (lending platform, API "O5R").

Body: ``{event, requestId?, offerId?, diff?: {property, after}}``; a created resource is
sent as its id only, an update as the one property that changed and its new value.
October sends no event id and retries failed deliveries; ``X-O5R-TIMESTAMP`` is the
sending time of each attempt, so a retry is signed anew. An offer's creation happens once:
its id is a digest of the event and the offer's id, the same for every attempt. Any other
event's id is a digest of the timestamp and the raw body, so exact redeliveries of one
attempt (replays, duplicate records) share an id while a value flipped back (accepted,
pending, accepted) never collapses into an earlier event; docs/providers.md gives the full
reasoning. The timestamp is also the event's ``senttime``.

Every id the body names is kept: the resource's own as ``resource_id``, any other
(``offerId`` on a request's event, ``requestId`` on an offer's) in ``parents``; fields of
``diff`` other than ``property`` and ``after`` go to ``extra.diff``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from hookbus.mapping import (
    JsonObject,
    Mapped,
    Mapper,
    digest_id,
    event_data,
    leftovers,
    missing,
    optional_text,
    parse_json_object,
    require_object,
    require_text,
    unix_time,
    without_options,
)
from hookbus.rawevent import RawEvent

TIMESTAMP_HEADER = "x-o5r-timestamp"


class _EventType(NamedTuple):
    resource: str
    action: str
    id_field: str
    """The body field holding the resource's id."""
    partition: str
    """The entity whose events must stay ordered: ``request`` or ``offer``."""
    once: bool = False
    """The event happens once to the resource its body names (an offer is created once):
    every delivery of such a body, retries October signs anew included, is one fact."""


# A report has no id of its own in the webhook: it is the report of request <requestId>,
# and it is ordered with that request's other events.
_TYPES: dict[str, _EventType] = {
    "new_report": _EventType("report", "created", "requestId", "request"),
    "update_request": _EventType("request", "updated", "requestId", "request"),
    "new_offer": _EventType("offer", "created", "offerId", "offer", once=True),
    "update_offer": _EventType("offer", "updated", "offerId", "offer"),
}
_ID_FIELDS = {"request": "requestId", "offer": "offerId"}
_USED_FIELDS = ("event", "requestId", "offerId", "diff")
_DIFF_FIELDS = ("property", "after")


def _changes(body: JsonObject) -> tuple[list[JsonObject], JsonObject]:
    """The diff as one change, and the diff's other fields (kept in ``extra.diff``)."""
    if body.get("diff") is None:
        return [], {}
    diff = require_object(body, "diff")
    prop = require_text(diff, "property", "diff.")
    if "after" not in diff:
        raise missing("diff.after")
    return [{"field": prop, "after": diff["after"]}], leftovers(diff, _DIFF_FIELDS)


def _extra(body: JsonObject, diff_rest: JsonObject) -> JsonObject:
    extra = leftovers(body, _USED_FIELDS)
    if diff_rest:
        extra["diff"] = diff_rest
    return extra


def _parents(body: JsonObject, own_field: str) -> dict[str, str]:
    return {
        name: value
        for name, field in _ID_FIELDS.items()
        if field != own_field and (value := optional_text(body, field)) is not None
    }


def partition_key(body: Mapping[str, Any]) -> str:
    """The entity whose events keep their order: a documented type's request or offer; an
    undocumented type's offer, else its request, else (naming neither) the provider."""
    known = _TYPES.get(require_text(body, "event"))
    if known is not None:
        return f"october:{known.partition}:{require_text(body, _ID_FIELDS[known.partition])}"
    for kind in ("offer", "request"):
        entity = optional_text(body, _ID_FIELDS[kind])
        if entity is not None:
            return f"october:{kind}:{entity}"
    return "october"


RAW_KEY_MEMBERS = ("event", *_ID_FIELDS.values())
"""The top-level fields :func:`partition_key` reads."""


def _timestamp(raw: RawEvent) -> str:
    timestamp = raw.headers.get(TIMESTAMP_HEADER)
    if not timestamp:
        raise missing(f"header {TIMESTAMP_HEADER}")
    return timestamp


def map_event(raw: RawEvent) -> Mapped:
    body = parse_json_object(raw.body)
    name = require_text(body, "event")
    timestamp = _timestamp(raw)
    sent_time = unix_time(timestamp, 1000)
    changes, diff_rest = _changes(body)
    known = _TYPES.get(name)
    if known is None:
        return _unknown(name, body, digest_id(timestamp, raw.body), sent_time, (changes, diff_rest))
    resource_id = require_text(body, known.id_field)
    # What happens once to a resource is identified by it, whenever the attempt was signed;
    # anything else only by the attempt (docs/providers.md).
    local_id = digest_id(name, resource_id) if known.once else digest_id(timestamp, raw.body)
    return Mapped(
        type=f"october.{known.resource}.{known.action}",
        known_type=True,
        local_id=local_id,
        partition_key=partition_key(body),
        subject=resource_id,
        sent_time=sent_time,
        data=event_data(
            resource=known.resource,
            action=known.action,
            resource_id=resource_id,
            parents=_parents(body, known.id_field),
            changes=changes,
            extra=_extra(body, diff_rest),
        ),
    )


def _unknown(
    name: str, body: JsonObject, local_id: str, sent_time: str | None, diff: tuple[list[JsonObject], JsonObject]
) -> Mapped:
    # An event October has not documented yet: passed on, flagged, and ordered with the
    # offer or request it names.
    offer_id = optional_text(body, "offerId")
    id_field = "offerId" if offer_id is not None else "requestId"
    resource_id = offer_id if offer_id is not None else optional_text(body, "requestId")
    return Mapped(
        type=f"october.{name}",
        known_type=False,
        local_id=local_id,
        partition_key=partition_key(body),
        subject=resource_id,
        sent_time=sent_time,
        data=event_data(
            resource=None,
            action=None,
            resource_id=resource_id,
            parents=_parents(body, id_field),
            changes=diff[0],
            extra=_extra(body, diff[1]),
        ),
    )


MAPPER = Mapper(
    bind=without_options(map_event),
    known_types={name: f"october.{spec.resource}.{spec.action}" for name, spec in _TYPES.items()},
)
