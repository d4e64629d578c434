"""October: X-O5R-HASH = hex HMAC-SHA256(key, X-O5R-TIMESTAMP + body), timestamp in milliseconds."""

from __future__ import annotations

import pytest

from hookbus.config import SourceConfig
from hookbus.provider import provider
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, RawRequest, Reason, Reject
from tests.providers.builders import hmac_of, request_of, source_of

KEY = "c35d3a6f69d7dfb55c2b19364039aa14"
OLD_KEY = "9e60c8e60e6983b1c7626558bfceeb43"
BODY = b'{"event":"new_report","requestId":"61a0b2c3d4e5f60718293a4b"}'
SENT_MS = 1_700_000_000_123
SENT_AT = SENT_MS / 1000
TOLERANCE = 300

VERIFIER = provider("october").verifier


@pytest.fixture
def source() -> SourceConfig:
    return source_of("october", secrets=[OLD_KEY, KEY], tolerance_seconds=TOLERANCE)


@pytest.fixture
def signed() -> RawRequest:
    signature = hmac_of(KEY, str(SENT_MS).encode(), BODY).hex()
    return request_of(BODY, {"X-O5R-HASH": signature, "X-O5R-TIMESTAMP": str(SENT_MS)})


def test_accepts_a_request_signed_by_the_second_secret(source: SourceConfig, signed: RawRequest) -> None:
    assert VERIFIER.verify(source, signed, SENT_AT) == Accept(AuthMethod.SIGNATURE)


@pytest.mark.parametrize("skew", [TOLERANCE, -TOLERANCE], ids=["old", "future"])
def test_accepts_a_timestamp_exactly_at_the_edge(source: SourceConfig, signed: RawRequest, skew: int) -> None:
    assert VERIFIER.verify(source, signed, (SENT_MS + skew * 1000) / 1000) == Accept(AuthMethod.SIGNATURE)


@pytest.mark.parametrize("skew", [TOLERANCE + 0.001, -TOLERANCE - 0.001], ids=["old", "future"])
def test_rejects_a_timestamp_a_millisecond_past_the_edge(source: SourceConfig, signed: RawRequest, skew: float) -> None:
    verdict = VERIFIER.verify(source, signed, SENT_AT + skew)
    assert isinstance(verdict, Reject)
    assert verdict.reason is Reason.STALE_TIMESTAMP


def test_accepts_uppercase_hex(
    source: SourceConfig,
) -> None:
    signature = hmac_of(KEY, str(SENT_MS).encode(), BODY).hex().upper()
    request = request_of(BODY, {"x-o5r-hash": signature, "x-o5r-timestamp": str(SENT_MS)})
    assert VERIFIER.verify(source, request, SENT_AT) == Accept(AuthMethod.SIGNATURE)


@pytest.mark.parametrize("duplicated", ["X-O5R-HASH", "X-O5R-TIMESTAMP"])
def test_rejects_a_signature_header_sent_twice(
    source: SourceConfig,
    signed: RawRequest,
    duplicated: str,
) -> None:
    headers = [*signed.headers.items(), (duplicated.lower(), signed.headers[duplicated])]
    verdict = VERIFIER.verify(source, request_of(BODY, headers), SENT_AT)
    assert isinstance(verdict, Reject)
    assert verdict.reason is Reason.MALFORMED_SIGNATURE


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("not hex at all", Reason.MALFORMED_SIGNATURE),
        ("ab cd", Reason.MALFORMED_SIGNATURE),
        ("abc", Reason.MALFORMED_SIGNATURE),
        ("é" * 64, Reason.MALFORMED_SIGNATURE),
        ("", Reason.MALFORMED_SIGNATURE),
        ("00" * 32, Reason.BAD_SIGNATURE),
        ("00" * 20, Reason.BAD_SIGNATURE),
    ],
    ids=["words", "spaced", "odd-length", "non-ascii", "empty", "zeros", "sha1-length"],
)
def test_rejects_a_signature_that_is_not_the_hmac(source: SourceConfig, signature: str, reason: Reason) -> None:
    request = request_of(BODY, {"X-O5R-HASH": signature, "X-O5R-TIMESTAMP": str(SENT_MS)})
    verdict = VERIFIER.verify(source, request, SENT_AT)
    assert isinstance(verdict, Reject)
    assert verdict.reason is reason


@pytest.mark.parametrize("timestamp", ["-1", "1.5", "1e12", "١٢٣", "9" * 40])
def test_rejects_a_timestamp_that_is_not_a_whole_number(source: SourceConfig, timestamp: str) -> None:
    signature = hmac_of(KEY, timestamp.encode(), BODY).hex()
    request = request_of(BODY, {"X-O5R-HASH": signature, "X-O5R-TIMESTAMP": timestamp})
    verdict = VERIFIER.verify(source, request, SENT_AT)
    assert isinstance(verdict, Reject)
    assert verdict.reason is Reason.MALFORMED_SIGNATURE


def test_rejects_a_timestamp_in_seconds(
    source: SourceConfig,
) -> None:
    seconds = str(SENT_MS // 1000)
    request = request_of(BODY, {"X-O5R-HASH": hmac_of(KEY, seconds.encode(), BODY).hex(), "X-O5R-TIMESTAMP": seconds})
    verdict = VERIFIER.verify(source, request, SENT_AT)
    assert isinstance(verdict, Reject)
    assert verdict.reason is Reason.STALE_TIMESTAMP


def test_keeps_the_hash_and_timestamp_headers(source: SourceConfig) -> None:
    assert VERIFIER.kept_headers(source) == {"x-o5r-hash", "x-o5r-timestamp"}
