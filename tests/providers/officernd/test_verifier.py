"""OfficeRnD: officernd-signature: t=<seconds>,signature=hex HMAC-SHA256(secret, body + "." + t)."""

from __future__ import annotations

import pytest

from hookbus.config import SourceConfig
from hookbus.provider import provider
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, Reason, Reject
from tests.providers.builders import hmac_of, request_of, source_of

SECRET = "7d1f0c2a9b8e4f3a6c5d2e1f0a9b8c7d"
OLD_SECRET = "0a9b8c7d7d1f0c2a9b8e4f3a6c5d2e1f"
BODY = '{"event":"5f8715ca1e74e400d4164ea6","eventType":"member.removed","data":{"object":{"name":"Zoë"}}}'.encode()
SENT_AT = 1_602_688_458
TOLERANCE = 300

VERIFIER = provider("officernd").verifier


@pytest.fixture
def source() -> SourceConfig:
    return source_of("officernd", secrets=[SECRET, OLD_SECRET], tolerance_seconds=TOLERANCE)


@pytest.fixture
def signature() -> str:
    return hmac_of(SECRET, BODY, b".", str(SENT_AT).encode()).hex()


def judge(source: SourceConfig, header: str, now: float = SENT_AT) -> object:
    verdict = VERIFIER.verify(source, request_of(BODY, {"officernd-signature": header}), now)
    return verdict.reason if isinstance(verdict, Reject) else verdict


def test_accepts_a_request_signed_by_the_second_secret(signature: str) -> None:
    rotated = source_of("officernd", secrets=[OLD_SECRET, SECRET])
    assert judge(rotated, f"t={SENT_AT},signature={signature}") == Accept(AuthMethod.SIGNATURE)


@pytest.mark.parametrize(
    "template",
    [
        "t={t},signature={s}",
        "signature={s},t={t}",
        " t = {t} , signature = {s} ",
        "t={t},signature={s},v0=ignored",
        "t={t},signature={S}",
    ],
    ids=["documented", "reordered", "whitespace", "extra-part", "uppercase-hex"],
)
def test_accepts_every_spelling_of_a_valid_header(source: SourceConfig, signature: str, template: str) -> None:
    header = template.format(t=SENT_AT, s=signature, S=signature.upper())
    assert judge(source, header) == Accept(AuthMethod.SIGNATURE)


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("signature={s}", Reason.MALFORMED_SIGNATURE),
        ("t={t}", Reason.MALFORMED_SIGNATURE),
        ("t={t},t={t},signature={s}", Reason.MALFORMED_SIGNATURE),
        ("t={t},signature={s},signature={s}", Reason.MALFORMED_SIGNATURE),
        ("t={t};signature={s}", Reason.MALFORMED_SIGNATURE),
        ("t={t},,signature={s}", Reason.MALFORMED_SIGNATURE),
        ("=,t={t},signature={s}", Reason.MALFORMED_SIGNATURE),
        ("t=soon,signature={s}", Reason.MALFORMED_SIGNATURE),
        ("t=,signature={s}", Reason.MALFORMED_SIGNATURE),
        ("t={t},signature=", Reason.MALFORMED_SIGNATURE),
        ("t={t},signature=xyz", Reason.MALFORMED_SIGNATURE),
        ("", Reason.MALFORMED_SIGNATURE),
        ("t={t1},signature={s}", Reason.BAD_SIGNATURE),
        ("t={t},signature={s40}", Reason.BAD_SIGNATURE),
    ],
    ids=[
        "no-t",
        "no-signature",
        "t-twice",
        "signature-twice",
        "semicolon",
        "empty-part",
        "empty-key",
        "t-not-a-number",
        "t-empty",
        "signature-empty",
        "signature-not-hex",
        "empty-header",
        "t-changed",
        "sha1-length",
    ],
)
def test_rejects_a_header_that_does_not_verify(
    source: SourceConfig, signature: str, template: str, reason: Reason
) -> None:
    header = template.format(t=SENT_AT, t1=SENT_AT + 1, s=signature, s40=signature[:40])
    assert judge(source, header) is reason


@pytest.mark.parametrize("skew", [TOLERANCE, -TOLERANCE], ids=["old", "future"])
def test_accepts_a_timestamp_exactly_at_the_edge(source: SourceConfig, signature: str, skew: int) -> None:
    header = f"t={SENT_AT},signature={signature}"
    assert judge(source, header, SENT_AT + skew) == Accept(AuthMethod.SIGNATURE)


@pytest.mark.parametrize("skew", [TOLERANCE + 1, -TOLERANCE - 1], ids=["old", "future"])
def test_rejects_a_timestamp_past_the_edge(source: SourceConfig, signature: str, skew: int) -> None:
    header = f"t={SENT_AT},signature={signature}"
    assert judge(source, header, SENT_AT + skew) is Reason.STALE_TIMESTAMP


def test_rejects_the_header_sent_twice(source: SourceConfig, signature: str) -> None:
    header = f"t={SENT_AT},signature={signature}"
    request = request_of(BODY, [("officernd-signature", header), ("OfficeRnD-Signature", header)])
    verdict = VERIFIER.verify(source, request, SENT_AT)
    assert isinstance(verdict, Reject)
    assert verdict.reason is Reason.MALFORMED_SIGNATURE


def test_keeps_the_signature_header(source: SourceConfig) -> None:
    assert VERIFIER.kept_headers(source) == {"officernd-signature"}
