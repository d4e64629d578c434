"""Gitea: ``X-Gitea-Signature`` is the hex HMAC-SHA256 of the raw body, keyed by the
webhook's secret. Gitea sends no timestamp, so a captured request can be replayed: the
event id is the delivery's ``X-Gitea-Delivery``, on which consumers deduplicate.

``X-Gitea-Event`` and ``X-Gitea-Delivery`` are not signed (only the body is); they are
kept for the mapper, which needs them, and judged there.
"""

from __future__ import annotations

from hookbus.config import SourceConfig
from hookbus.request import RawRequest, Reject, Verdict
from hookbus.verifying import Verifier, check_hmac, fixed_headers, single_header

SIGNATURE_HEADER = "X-Gitea-Signature"
EVENT_HEADER = "X-Gitea-Event"
DELIVERY_HEADER = "X-Gitea-Delivery"


def verify(source: SourceConfig, request: RawRequest, now: float) -> Verdict:
    if isinstance(signature := single_header(request, SIGNATURE_HEADER), Reject):
        return signature
    return check_hmac(source, signature, (request.body,), header=SIGNATURE_HEADER)


VERIFIER = Verifier(verify=verify, kept_headers=fixed_headers(SIGNATURE_HEADER, EVENT_HEADER, DELIVERY_HEADER))
