"""Gitea (self-hosted Git forge).

The event name is the ``X-Gitea-Event`` header (``push``, ``issues``, ``pull_request``,
``release``, ``create``, ``delete``, ...); the body names what happened to it in ``action``
where the event has several outcomes (``issues`` ``opened``, ``closed``, ``edited``...).
The canonical type is ``gitea.<event>`` or ``gitea.<event>.<action>``; data.resource is the
event name and data.action the body's action, as the type reads.

The id is ``X-Gitea-Delivery``, the UUID Gitea gives each delivery. Every event is ordered
with its repository (``gitea:repository:<repository.id>``: the id survives renames and
transfers, ``full_name`` does not). The subject is the repository's ``full_name``, or
``owner/repo#<number>`` for an event about one issue or pull request: numbers count per
repository, and one source may receive the events of many (organisation and system
webhooks), so the number alone would name two issues. That is Gitea's own notation for an
issue of another repository. Gitea's bodies carry no delivery time: time is the received time.

data.object is the issue, pull request or release the event is about, as sent (null for
``push``, ``create`` and ``delete``, which are about a ref); an edit's ``changes``
(``{field: {from}}``) become data.changes, with ``after`` read from that object. Every other
body field (``repository``, ``sender``, ``number``, a push's ``commits``...) is in data.extra,
as sent.

Only JSON bodies are mapped: a webhook set to Gitea's other content type
(``application/x-www-form-urlencoded``, the JSON in a ``payload`` form field) is dead-lettered
as ``unparseable_body``; set its content type to ``application/json``.
"""

from __future__ import annotations

import re
from typing import Any

from hookbus.mapping import (
    JsonObject,
    Mapped,
    Mapper,
    MappingError,
    event_data,
    id_text,
    leftovers,
    missing,
    optional_text,
    parse_json_object,
    require_object,
    require_text,
    without_options,
)
from hookbus.rawevent import RawEvent

EVENT_HEADER = "x-gitea-event"
DELIVERY_HEADER = "x-gitea-delivery"

# Gitea's event names and actions are snake_case; anything else in the unsigned header (or
# in the body) would make a type no consumer can match on.
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# The body field holding the resource an event is about, by event name; push, create and
# delete are about a ref and send no such object.
_OBJECT_FIELDS: dict[str, str] = {"issues": "issue", "pull_request": "pull_request", "release": "release"}
# Events about one issue or pull request, which the body's ``number`` names.
_NUMBERED = frozenset({"issues", "pull_request"})

# The documented types hookbus names, as Gitea names them: ``<event>`` or ``<event>.<action>``.
KNOWN_TYPES: tuple[str, ...] = (
    "push",
    "create",
    "delete",
    "issues.opened",
    "issues.edited",
    "issues.closed",
    "issues.reopened",
    "pull_request.opened",
    "pull_request.synchronized",
    "pull_request.closed",
    "release.published",
)


def _header(raw: RawEvent, name: str) -> str:
    value = raw.headers.get(name)
    if not value:
        raise missing(f"header {name}")
    return value


def _event_name(raw: RawEvent) -> str:
    event = _header(raw, EVENT_HEADER)
    if not _NAME.fullmatch(event):
        raise MappingError(f"header {EVENT_HEADER} must be a snake_case event name", reason="bad_field_type")
    return event


def _delivery(raw: RawEvent) -> str:
    delivery = _header(raw, DELIVERY_HEADER)
    if not _UUID.fullmatch(delivery):
        raise MappingError(f"header {DELIVERY_HEADER} must be a UUID", reason="bad_field_type")
    return delivery


def _action(body: JsonObject) -> str | None:
    action = optional_text(body, "action")
    if action is not None and not _NAME.fullmatch(action):
        raise MappingError("field 'action' must be a snake_case name", reason="bad_field_type")
    return action


def _repository(body: JsonObject, *, required: bool) -> tuple[str, str] | None:
    """(id, full_name) of the repository; an undocumented event may name none."""
    try:
        repository = require_object(body, "repository")
        return id_text(repository.get("id"), "repository.id"), require_text(repository, "full_name", "repository.")
    except MappingError:
        if required:
            raise
        return None


def _key(repository: tuple[str, str] | None) -> str:
    # By repository id, which a rename keeps: a repository's events stay in order.
    return f"gitea:repository:{repository[0]}" if repository is not None else "gitea"


RAW_KEY_MEMBERS = ("repository",)
"""The top-level field :func:`partition_key` reads."""


def partition_key(body: JsonObject) -> str:
    """The entity whose events keep their order, as :func:`map_event` keys the event (an
    event it maps names its repository whenever its type requires one)."""
    return _key(_repository(body, required=False))


def _number(body: JsonObject, event: str, *, required: bool) -> str | None:
    if required and event in _NUMBERED:
        return id_text(body.get("number"), "number")
    number = body.get("number")
    return str(number) if isinstance(number, int) and not isinstance(number, bool) else None


def _resource_object(body: JsonObject, event: str, *, required: bool) -> tuple[str | None, Any]:
    field = _OBJECT_FIELDS.get(event)
    if field is None:
        return None, None
    if required:
        return field, require_object(body, field)
    value = body.get(field)
    return (field, value) if isinstance(value, dict) else (None, None)


def _changes(body: JsonObject, resource_object: Any) -> list[JsonObject] | None:
    """An edit's ``changes`` (``{field: {from: before}}``) as data.changes; ``None`` when the
    body sends none, or sends them in a shape Gitea does not document (then they stay in extra)."""
    sent = body.get("changes")
    if not isinstance(sent, dict) or not isinstance(resource_object, dict):
        return None
    if not all(isinstance(change, dict) and set(change) == {"from"} for change in sent.values()):
        return None
    return [
        {"field": name, "before": change["from"], "after": resource_object.get(name)} for name, change in sent.items()
    ]


def map_event(raw: RawEvent) -> Mapped:
    event = _event_name(raw)
    delivery = _delivery(raw)
    body = parse_json_object(raw.body)
    action = _action(body)
    gitea_type = event if action is None else f"{event}.{action}"
    known = gitea_type in KNOWN_TYPES
    repository = _repository(body, required=known)
    number = _number(body, event, required=known)
    object_field, resource_object = _resource_object(body, event, required=known)
    changes = _changes(body, resource_object)

    subject: str | None = None
    parents: dict[str, str] = {}
    if repository is not None:
        subject = repository[1] if number is None else f"{repository[1]}#{number}"
        if number is not None:
            parents["repository"] = repository[1]
    # Fields moved verbatim into data leave extra; everything else stays there, as sent.
    taken = [
        *(["action"] if action is not None else []),
        *([object_field] if object_field is not None else []),
        *(["changes"] if changes is not None else []),
    ]
    return Mapped(
        type=f"gitea.{gitea_type}",
        known_type=known,
        local_id=delivery,
        partition_key=_key(repository),
        subject=subject,
        data=event_data(
            resource=event,
            action=action,
            resource_id=subject,
            parents=parents,
            changes=changes,
            resource_object=resource_object,
            extra=leftovers(body, taken),
        ),
    )


MAPPER = Mapper(
    bind=without_options(map_event),
    known_types={name: f"gitea.{name}" for name in KNOWN_TYPES},
)
