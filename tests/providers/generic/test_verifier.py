"""The generic source: its optional signature option, checked at startup and applied per request."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from hookbus.config import SourceConfig
from hookbus.errors import ConfigError
from hookbus.provider import provider
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, RawRequest, Reason, Reject
from tests.providers.builders import hmac_of, request_of, source_of

SECRET = "gen_whsec_0d1f3a5c7e9b1d3f5a7c9e1b2c4e6a8b"
OLD_SECRET = "gen_whsec_old_7e9b1d3f5a7c9e1b2c4e6a8b0d1f3a5c"
BODY = b'{"customer_id":"c_1029","email":"ana@example.com"}'
SENT_AT = 1_767_604_364
TOLERANCE = 300

VERIFIER = provider("generic").verifier


def signed_source(**signature: Any) -> SourceConfig:
    return source_of(
        "generic",
        secrets=[OLD_SECRET, SECRET],
        tolerance_seconds=TOLERANCE,
        signature={"header": "X-Signature", **signature},
    )


def judge(source: SourceConfig, request: RawRequest, now: float = SENT_AT) -> object:
    verdict = VERIFIER.verify(source, request, now)
    return verdict.reason if isinstance(verdict, Reject) else verdict


@pytest.mark.parametrize("algorithm", ["sha256", "sha512", "sha1"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_accepts_each_algorithm_and_encoding(algorithm: str, encoding: str) -> None:
    source = signed_source(algorithm=algorithm, encoding=encoding)
    digest = hmac_of(SECRET, BODY, algorithm=algorithm)
    text = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    assert judge(source, request_of(BODY, {"x-signature": text})) == Accept(AuthMethod.SIGNATURE)


def test_defaults_to_hex_sha256_over_the_body() -> None:
    source = signed_source()
    assert judge(source, request_of(BODY, {"X-Signature": hmac_of(SECRET, BODY).hex()})) == Accept(AuthMethod.SIGNATURE)
    assert judge(source, request_of(BODY, {"X-Signature": hmac_of(SECRET, BODY, algorithm="sha512").hex()})) is (
        Reason.BAD_SIGNATURE
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("sha256={hex}", Accept(AuthMethod.SIGNATURE)),
        ("sha256={HEX}", Accept(AuthMethod.SIGNATURE)),
        ("{hex}", Reason.MALFORMED_SIGNATURE),
        ("SHA256={hex}", Reason.MALFORMED_SIGNATURE),
        ("sha256=", Reason.MALFORMED_SIGNATURE),
        ("sha256={zeros}", Reason.BAD_SIGNATURE),
    ],
    ids=["prefixed", "uppercase-hex", "no-prefix", "other-case-prefix", "prefix-only", "wrong"],
)
def test_requires_the_prefix(header: str, expected: object) -> None:
    source = signed_source(prefix="sha256=")
    digest = hmac_of(SECRET, BODY).hex()
    value = header.format(hex=digest, HEX=digest.upper(), zeros="0" * 64)
    assert judge(source, request_of(BODY, {"X-Signature": value})) == expected


@pytest.mark.parametrize(("unit", "per_second"), [("s", 1), ("ms", 1000)])
def test_signs_the_timestamp_a_dot_and_the_body(unit: str, per_second: int) -> None:
    source = signed_source(timestamp_header="X-Timestamp", timestamp_unit=unit)
    timestamp = str(SENT_AT * per_second)
    good = hmac_of(SECRET, timestamp.encode(), b".", BODY).hex()
    unsigned_timestamp = hmac_of(SECRET, BODY).hex()
    headers = {"X-Signature": good, "X-Timestamp": timestamp}

    assert judge(source, request_of(BODY, headers)) == Accept(AuthMethod.SIGNATURE)
    assert judge(source, request_of(BODY, headers), SENT_AT + TOLERANCE) == Accept(AuthMethod.SIGNATURE)
    assert judge(source, request_of(BODY, headers), SENT_AT - TOLERANCE) == Accept(AuthMethod.SIGNATURE)
    assert judge(source, request_of(BODY, headers), SENT_AT + TOLERANCE + 1) is Reason.STALE_TIMESTAMP
    assert judge(source, request_of(BODY, headers), SENT_AT - TOLERANCE - 1) is Reason.STALE_TIMESTAMP
    assert judge(source, request_of(BODY, {**headers, "X-Signature": unsigned_timestamp})) is Reason.BAD_SIGNATURE
    assert judge(source, request_of(BODY, {"X-Signature": good})) is Reason.MISSING_SIGNATURE
    assert judge(source, request_of(BODY, {**headers, "X-Timestamp": "now"})) is Reason.MALFORMED_SIGNATURE


def test_rejects_signature_headers_sent_twice() -> None:
    source = signed_source(timestamp_header="X-Timestamp")
    timestamp = str(SENT_AT)
    signature = hmac_of(SECRET, timestamp.encode(), b".", BODY).hex()
    twice_signed = [("X-Signature", signature), ("x-signature", signature), ("X-Timestamp", timestamp)]
    twice_stamped = [("X-Signature", signature), ("X-Timestamp", timestamp), ("x-timestamp", timestamp)]
    assert judge(source, request_of(BODY, twice_signed)) is Reason.MALFORMED_SIGNATURE
    assert judge(source, request_of(BODY, twice_stamped)) is Reason.MALFORMED_SIGNATURE


def test_without_the_signature_option_verifies_nothing_itself() -> None:
    source = source_of("generic", api_key="gen_key")
    assert judge(source, request_of(BODY)) == Accept(AuthMethod.NONE)


@pytest.mark.parametrize(
    ("signature", "key"),
    [
        ("X-Signature", "signature"),
        ({}, "signature.header"),
        ({"header": "X Signature"}, "signature.header"),
        ({"header": 12}, "signature.header"),
        ({"header": "X-Signature", "algorithm": "md5"}, "signature.algorithm"),
        ({"header": "X-Signature", "encoding": "base32"}, "signature.encoding"),
        ({"header": "X-Signature", "prefix": 256}, "signature.prefix"),
        ({"header": "X-Signature", "timestamp_header": "x-signature"}, "signature.timestamp_header"),
        ({"header": "X-Signature", "timestamp_unit": "ms"}, "signature.timestamp_unit"),
        (
            {"header": "X-Signature", "timestamp_header": "X-Timestamp", "timestamp_unit": "us"},
            "signature.timestamp_unit",
        ),
        ({"header": "X-Signature", "hash": "sha256"}, "signature.hash"),
    ],
    ids=[
        "not-a-mapping",
        "no-header",
        "header-with-space",
        "header-not-text",
        "unknown-algorithm",
        "unknown-encoding",
        "prefix-not-text",
        "timestamp-header-is-signature-header",
        "unit-without-timestamp-header",
        "unknown-unit",
        "unknown-key",
    ],
)
def test_refuses_bad_signature_options_at_startup(signature: object, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        source_of("generic", secrets=[SECRET], signature=signature)
    assert raised.value.key == key
    assert raised.value.source == "test-generic"


def test_refuses_a_signature_without_secrets() -> None:
    with pytest.raises(ConfigError) as raised:
        source_of("generic", signature={"header": "X-Signature"})
    assert raised.value.key == "secrets"


def test_refuses_secrets_without_a_signature() -> None:
    with pytest.raises(ConfigError) as raised:
        source_of("generic", secrets=[SECRET], api_key="gen_key")
    assert raised.value.key == "secrets"


def test_keeps_signature_and_mapped_headers_but_not_required_ones() -> None:
    source = source_of(
        "generic",
        secrets=[SECRET],
        signature={"header": "X-Signature", "timestamp_header": "X-Timestamp"},
        required_headers={"X-Source-System": "crm"},
        mapping={"type": "header:X-Event-Type", "subject": "header:X-Customer", "id": "/event_id"},
    )
    assert VERIFIER.kept_headers(source) == {
        "x-signature",
        "x-timestamp",
        "x-event-type",
        "x-customer",
    }


def test_a_bad_mapping_fails_the_gateway_at_startup_too() -> None:
    with pytest.raises(ConfigError) as raised:
        source_of("generic", api_key="gen_key", mapping={"type": "header:X-API-Key"})
    assert raised.value.key == "mapping.type"
