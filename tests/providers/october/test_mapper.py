"""October's event ids across retries. October signs every attempt anew (``X-O5R-TIMESTAMP``
is the time the attempt was sent), so a retry of one delivery is the same body with a new
timestamp and a new signature. An offer's creation is identified by the offer, so its
retries share one id; an update is identified only by its attempt, so that a value flipped
back is never taken for the earlier event (docs/providers.md)."""

from __future__ import annotations

import orjson

from hookbus.cloudevent import CloudEvent
from hookbus.provider import Credentials, provider
from hookbus.request import Accept
from ingest.capture import capture
from ingest.decision import decide, kept_headers
from normalizer.normalizer import Normalizer
from tests.providers.builders import request_of, source_of

SECRET = "c35d3a6f69d7dfb55c2b19364039aa14"
SOURCE = source_of("october", secrets=[SECRET])
NORMALIZER = Normalizer({SOURCE.name: SOURCE})
FIRST_ATTEMPT = 1_767_225_600.0
RETRY = FIRST_ATTEMPT + 90.5


def delivered(body: dict[str, object], sent_at: float, ingest_id: str) -> CloudEvent:
    """One attempt as October sends it, through the gateway's own verification and capture."""
    raw_body = orjson.dumps(body)
    signed = provider("october").examples.sign(
        raw_body, str(body["event"]), Credentials(secret=SECRET.encode()), sent_at
    )
    request = request_of(raw_body, signed.headers)
    verdict = decide(SOURCE, request, sent_at + 0.2)
    assert isinstance(verdict, Accept)
    raw = capture(SOURCE, request, verdict.auth, sent_at + 0.2, ingest_id, kept_headers(SOURCE))
    return NORMALIZER.normalize(raw)


def test_a_re_signed_retry_of_an_offer_creation_keeps_its_id() -> None:
    created = {"event": "new_offer", "offerId": "6183a1f0c2b7e2001f4d9a11", "requestId": "1b9e20b6hexb81w0133ahe92"}
    first = delivered(created, FIRST_ATTEMPT, "ing-first")
    retry = delivered(created, RETRY, "ing-retry")
    assert first.extensions["senttime"] != retry.extensions["senttime"]
    assert first.id == retry.id
    assert first.extensions["ingestid"] != retry.extensions["ingestid"]


def test_two_offers_created_keep_distinct_ids() -> None:
    one = delivered({"event": "new_offer", "offerId": "offer-1", "requestId": "r1"}, FIRST_ATTEMPT, "ing-1")
    other = delivered({"event": "new_offer", "offerId": "offer-2", "requestId": "r1"}, FIRST_ATTEMPT, "ing-2")
    assert one.id != other.id


def test_two_status_changes_of_one_request_keep_distinct_ids() -> None:
    accepted = {"event": "update_request", "requestId": "r1", "diff": {"property": "status", "after": "accepted"}}
    pending = {"event": "update_request", "requestId": "r1", "diff": {"property": "status", "after": "pending"}}
    ids = {
        delivered(accepted, FIRST_ATTEMPT, "ing-1").id,
        delivered(pending, FIRST_ATTEMPT + 1, "ing-2").id,
        # Flipped back: the same body as the first, a later fact.
        delivered(accepted, FIRST_ATTEMPT + 2, "ing-3").id,
    }
    assert len(ids) == 3


def test_an_offer_update_is_identified_by_its_attempt() -> None:
    # The body cannot tell a retry from a stage set again after another: keeping both is
    # harmless (the update carries the whole new value), merging them would lose a change.
    updated = {"event": "update_offer", "offerId": "offer-1", "diff": {"property": "stage", "after": "signed"}}
    assert delivered(updated, FIRST_ATTEMPT, "ing-1").id != delivered(updated, RETRY, "ing-2").id
