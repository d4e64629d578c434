"""Octamile (vehicle insurance).

Body: ``{product, consumerId, trnsctnId, status, statusNote, crtfct?, crtfctType?}``, sent
when a policy is approved (``status`` "a", with a base64 certificate) or declined ("d").
There is no event id and no event time: a policy reaches each status once, so the id is a
digest of the transaction and the status. The certificate is checked
(normalizer/certificate.py) and stays in the event, inline, as received.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hookbus.mapping import (
    Mapped,
    Mapper,
    digest_id,
    event_data,
    parse_json_object,
    require_text,
    without_options,
)
from hookbus.rawevent import RawEvent

from .certificate import check_certificate

ACTIONS: dict[str, str] = {"a": "approved", "d": "declined"}


RAW_KEY_MEMBERS = ("trnsctnId",)
"""The top-level field :func:`partition_key` reads: the certificate beside it is never decoded."""


def partition_key(body: Mapping[str, Any]) -> str:
    """A policy's events keep their order: keyed by its transaction."""
    return f"octamile:transaction:{require_text(body, 'trnsctnId')}"


def map_event(raw: RawEvent) -> Mapped:
    body = parse_json_object(raw.body)
    transaction = require_text(body, "trnsctnId")
    status = require_text(body, "status")
    # An undocumented status passes on as octamile.policy.<status>, flagged.
    action = ACTIONS.get(status, status)
    certificate = check_certificate(body.get("crtfct"), body.get("crtfctType"), required=status == "a")
    data = event_data(
        resource="policy",
        action=action,
        resource_id=transaction,
        changes=[{"field": "status", "after": status}],
        resource_object=body,
    )
    data["certificate"] = certificate.as_data() if certificate is not None else None
    return Mapped(
        type=f"octamile.policy.{action}",
        known_type=status in ACTIONS,
        local_id=digest_id(transaction, status),
        partition_key=partition_key(body),
        subject=transaction,
        data=data,
    )


MAPPER = Mapper(
    bind=without_options(map_event),
    known_types={status: f"octamile.policy.{action}" for status, action in ACTIONS.items()},
)
