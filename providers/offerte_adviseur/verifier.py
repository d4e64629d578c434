"""Offerte Adviseur: ``x-offerte-adviseur-signature`` is the hex HMAC-SHA256 of the raw body,
keyed by the webhook secret. The request carries no timestamp, so a captured request can be
replayed: deduplicate downstream on the event ``id``.
"""

from __future__ import annotations

from hookbus.config import SourceConfig
from hookbus.request import RawRequest, Reject, Verdict
from hookbus.verifying import Verifier, check_hmac, fixed_headers, single_header

SIGNATURE_HEADER = "x-offerte-adviseur-signature"


def verify(source: SourceConfig, request: RawRequest, now: float) -> Verdict:
    if isinstance(signature := single_header(request, SIGNATURE_HEADER), Reject):
        return signature
    return check_hmac(source, signature, (request.body,), header=SIGNATURE_HEADER)


VERIFIER = Verifier(verify=verify, kept_headers=fixed_headers(SIGNATURE_HEADER))
