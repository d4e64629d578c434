"""Offerte Adviseur: x-offerte-adviseur-signature = hex HMAC-SHA256(secret, body), no timestamp."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from hookbus.config import SourceConfig
from hookbus.provider import provider
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, RawRequest, Reason, Reject
from tests.providers.builders import hmac_of, request_of, source_of

SECRET = "oa_whsec_3f9a7c1e5b2d4f6a8c0e1a3b5d7f9b1d"
NEW_SECRET = "oa_whsec_new_5b2d4f6a8c0e1a3b5d7f9b1d3f9a7c1e"
BODY = b'{"id":"a056V7R7NmNRjl70","type":"lead.created","payload":{"lead_id":12345}}'
NOW = 1_709_294_402

VERIFIER = provider("offerte_adviseur").verifier


@pytest.fixture
def source() -> SourceConfig:
    return source_of("offerte_adviseur", secrets=[NEW_SECRET, SECRET])


def judge(source: SourceConfig, request: RawRequest) -> object:
    verdict = VERIFIER.verify(source, request, NOW)
    return verdict.reason if isinstance(verdict, Reject) else verdict


@pytest.mark.parametrize("spell", [str.lower, str.upper], ids=["lowercase", "uppercase"])
def test_accepts_a_body_signed_by_the_second_secret(source: SourceConfig, spell: Callable[[str], str]) -> None:
    request = request_of(BODY, {"X-Offerte-Adviseur-Signature": spell(hmac_of(SECRET, BODY).hex())})
    assert judge(source, request) == Accept(AuthMethod.SIGNATURE)


def test_ignores_the_time_of_arrival(
    source: SourceConfig,
) -> None:
    request = request_of(BODY, {"x-offerte-adviseur-signature": hmac_of(SECRET, BODY).hex()})
    assert VERIFIER.verify(source, request, NOW + 10 * 365 * 86400) == Accept(AuthMethod.SIGNATURE)


def test_rejects_a_signature_by_an_unknown_secret(
    source: SourceConfig,
) -> None:
    request = request_of(BODY, {"x-offerte-adviseur-signature": hmac_of("another", BODY).hex()})
    assert judge(source, request) is Reason.BAD_SIGNATURE


def test_rejects_a_base64_signature_as_malformed(
    source: SourceConfig,
) -> None:
    request = request_of(BODY, {"x-offerte-adviseur-signature": base64.b64encode(hmac_of(SECRET, BODY)).decode()})
    assert judge(source, request) is Reason.MALFORMED_SIGNATURE


def test_rejects_the_header_sent_twice(
    source: SourceConfig,
) -> None:
    signature = hmac_of(SECRET, BODY).hex()
    headers = [("x-offerte-adviseur-signature", signature), ("x-offerte-adviseur-signature", signature)]
    assert judge(source, request_of(BODY, headers)) is Reason.MALFORMED_SIGNATURE


def test_keeps_the_signature_header(source: SourceConfig) -> None:
    assert VERIFIER.kept_headers(source) == {"x-offerte-adviseur-signature"}
