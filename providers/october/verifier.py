"""October ("O5R"): ``X-O5R-HASH`` is the hex HMAC-SHA256, keyed by the webhook key, of
``X-O5R-TIMESTAMP`` followed directly by the raw body. The timestamp is in milliseconds.

The timestamp is checked before the HMAC is computed: a replayed or badly clocked request
is refused without hashing its body.
"""

from __future__ import annotations

from hookbus.config import SourceConfig
from hookbus.request import RawRequest, Reject, Verdict
from hookbus.verifying import Verifier, check_hmac, check_timestamp, fixed_headers, single_header

HASH_HEADER = "X-O5R-HASH"
TIMESTAMP_HEADER = "X-O5R-TIMESTAMP"


def verify(source: SourceConfig, request: RawRequest, now: float) -> Verdict:
    if isinstance(signature := single_header(request, HASH_HEADER), Reject):
        return signature
    if isinstance(timestamp := single_header(request, TIMESTAMP_HEADER), Reject):
        return timestamp
    stale = check_timestamp(timestamp, header=TIMESTAMP_HEADER, per_second=1000, source=source, now=now)
    if stale is not None:
        return stale
    return check_hmac(source, signature, (timestamp.encode("ascii"), request.body), header=HASH_HEADER)


VERIFIER = Verifier(verify=verify, kept_headers=fixed_headers(HASH_HEADER, TIMESTAMP_HEADER))
