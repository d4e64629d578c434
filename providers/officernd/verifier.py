"""OfficeRnD: ``officernd-signature: t=<unix seconds>,signature=<hex>``, where the signature is
the HMAC-SHA256, keyed by the webhook secret, of the raw body, a dot, and ``t``.

The header's parts are split on ``,`` and then on the first ``=``, with whitespace around
them ignored; parts other than ``t`` and ``signature`` are ignored, so the provider can add
some. A part without ``=``, a part given twice, or a missing ``t`` or ``signature`` makes the
header malformed. The timestamp is checked before the HMAC is computed.
"""

from __future__ import annotations

from hookbus.config import SourceConfig
from hookbus.request import RawRequest, Reason, Reject, Verdict
from hookbus.verifying import Verifier, check_hmac, check_timestamp, fixed_headers, single_header

SIGNATURE_HEADER = "officernd-signature"


def verify(source: SourceConfig, request: RawRequest, now: float) -> Verdict:
    if isinstance(header := single_header(request, SIGNATURE_HEADER), Reject):
        return header
    if isinstance(parts := _parse(header), Reject):
        return parts
    timestamp, signature = parts
    stale = check_timestamp(timestamp, header=f"{SIGNATURE_HEADER} t", per_second=1, source=source, now=now)
    if stale is not None:
        return stale
    return check_hmac(source, signature, (request.body, b".", timestamp.encode("ascii")), header=SIGNATURE_HEADER)


def _parse(header: str) -> tuple[str, str] | Reject:
    """``(t, signature)`` from the header value."""
    fields: dict[str, str] = {}
    for part in header.split(","):
        key, equals, value = part.partition("=")
        key = key.strip()
        if not equals or not key:
            return Reject(Reason.MALFORMED_SIGNATURE, f"{SIGNATURE_HEADER} is not t=...,signature=...")
        if key in fields:
            return Reject(Reason.MALFORMED_SIGNATURE, f"{SIGNATURE_HEADER} gives {key}= twice")
        fields[key] = value.strip()
    timestamp = fields.get("t")
    signature = fields.get("signature")
    if timestamp is None or signature is None:
        return Reject(Reason.MALFORMED_SIGNATURE, f"{SIGNATURE_HEADER} lacks t= or signature=")
    return timestamp, signature


VERIFIER = Verifier(verify=verify, kept_headers=fixed_headers(SIGNATURE_HEADER))
