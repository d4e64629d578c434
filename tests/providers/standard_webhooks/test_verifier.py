"""Standard Webhooks: webhook-signature lists v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>
entries, the key being the base64 after the secret's whsec_ prefix; the timestamp is in seconds."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

import pytest

from hookbus.config import SourceConfig
from hookbus.errors import ConfigError
from hookbus.provider import provider
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, RawRequest, Reason, Reject
from providers.standard_webhooks.verifier import MAX_SIGNATURES
from tests.providers.builders import request_of, source_of

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
OLD_KEY = b"the key of last year, still listed"
OLD_SECRET = "whsec_" + base64.b64encode(OLD_KEY).decode()
MESSAGE_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
BODY = b'{"type":"invoice.paid","timestamp":"2026-01-05T09:12:44Z","data":{"id":"inv_1"}}'
SENT_AT = 1_767_600_000
TOLERANCE = 300
ACCEPTED = Accept(AuthMethod.SIGNATURE)

VERIFIER = provider("standard_webhooks").verifier


def v1(key: bytes = KEY, *, message_id: str = MESSAGE_ID, timestamp: int = SENT_AT, body: bytes = BODY) -> str:
    """A v1 signature entry, computed here from the specification."""
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers_of(signature: str, *, message_id: str = MESSAGE_ID, timestamp: str = str(SENT_AT)) -> list[tuple[str, str]]:
    return [("webhook-id", message_id), ("webhook-timestamp", timestamp), ("webhook-signature", signature)]


@pytest.fixture
def source() -> SourceConfig:
    return source_of("standard_webhooks", secrets=[OLD_SECRET, SECRET], tolerance_seconds=TOLERANCE)


def judge(source: SourceConfig, request: RawRequest, now: float = SENT_AT) -> object:
    verdict = VERIFIER.verify(source, request, now)
    return verdict.reason if isinstance(verdict, Reject) else verdict


# --- signatures ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", [KEY, OLD_KEY], ids=["current-secret", "old-secret"])
def test_accepts_a_request_signed_with_any_configured_secret(source: SourceConfig, key: bytes) -> None:
    assert judge(source, request_of(BODY, headers_of(v1(key)))) == ACCEPTED


@pytest.mark.parametrize(
    "listed",
    [
        [v1(OLD_KEY), v1(KEY)],
        [v1(b"a key we do not hold"), v1(KEY)],
        [v1(KEY), v1(b"a key we do not hold")],
        ["v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==", v1(KEY)],
        ["v2,c29tZXRoaW5nIG5ldw==", v1(KEY)],
        [v1(b"a key we do not hold")] * (MAX_SIGNATURES - 1) + [v1(KEY)],
    ],
    ids=["rotation", "unknown-key-first", "unknown-key-last", "v1a-first", "future-version", "as-many-as-checked"],
)
def test_accepts_when_any_listed_v1_signature_matches(source: SourceConfig, listed: Sequence[str]) -> None:
    assert judge(source, request_of(BODY, headers_of(" ".join(listed)))) == ACCEPTED


def test_entries_may_be_separated_by_any_whitespace(source: SourceConfig) -> None:
    header = f"  {v1(b'a key we do not hold')} \t {v1(KEY)}  "
    assert judge(source, request_of(BODY, headers_of(header))) == ACCEPTED


def test_the_key_is_the_decoded_secret_not_its_text(source: SourceConfig) -> None:
    assert judge(source, request_of(BODY, headers_of(v1(SECRET.encode())))) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==", "missing"),
        ("", "missing"),
        ("   ", "missing"),
        ("v1", "malformed"),
        (f"{v1(KEY)} garbage", "malformed"),
        (f",{v1(KEY)[3:]}", "malformed"),
        ("v1,", "malformed"),
        ("v1,not base64!", "malformed"),
        ("v1,@@@@", "malformed"),
        ("v1,AAAA", "bad"),
        ("v1," + base64.b64encode(bytes(32)).decode(), "bad"),
        (" ".join([v1(b"a key we do not hold")] * (MAX_SIGNATURES + 1)), "malformed"),
        (" ".join([v1(b"a key we do not hold")] * MAX_SIGNATURES + [v1(KEY)]), "malformed"),
    ],
    ids=[
        "only-v1a",
        "empty",
        "blank",
        "no-comma",
        "one-entry-without-comma",
        "no-version",
        "empty-signature",
        "not-base64",
        "not-base64-alphabet",
        "too-short",
        "zeros",
        "too-many",
        "too-many-even-with-the-right-one",
    ],
)
def test_rejects_a_signature_header_without_a_matching_v1_signature(
    source: SourceConfig, header: str, reason: str
) -> None:
    expected = {
        "missing": Reason.MISSING_SIGNATURE,
        "malformed": Reason.MALFORMED_SIGNATURE,
        "bad": Reason.BAD_SIGNATURE,
    }[reason]
    assert judge(source, request_of(BODY, headers_of(header))) is expected


def test_a_malformed_entry_is_named_before_a_mismatch(source: SourceConfig) -> None:
    header = f"{v1(b'a key we do not hold')} v1,not-base64"
    assert judge(source, request_of(BODY, headers_of(header))) is Reason.MALFORMED_SIGNATURE


def test_rejects_a_changed_body(source: SourceConfig) -> None:
    tampered = BODY.replace(b"inv_1", b"inv_2")
    assert judge(source, request_of(tampered, headers_of(v1(KEY)))) is Reason.BAD_SIGNATURE


def test_rejects_a_changed_id(source: SourceConfig) -> None:
    request = request_of(BODY, headers_of(v1(KEY), message_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4X"))
    assert judge(source, request) is Reason.BAD_SIGNATURE


def test_rejects_a_changed_timestamp(source: SourceConfig) -> None:
    request = request_of(BODY, headers_of(v1(KEY), timestamp=str(SENT_AT + 1)))
    assert judge(source, request) is Reason.BAD_SIGNATURE


def test_rejects_an_id_with_a_dot_even_when_signed(source: SourceConfig) -> None:
    # "msg.1" + "." + "1767600000" + "." + body could as well be id "msg", timestamp "1".
    signed = v1(KEY, message_id="msg.1")
    assert judge(source, request_of(BODY, headers_of(signed, message_id="msg.1"))) is Reason.MALFORMED_SIGNATURE


@pytest.mark.parametrize("signed_by", [KEY, b"a key we do not hold"], ids=["accepted", "rejected"])
def test_every_listed_signature_is_compared_with_every_secret(
    source: SourceConfig, monkeypatch: pytest.MonkeyPatch, signed_by: bytes
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real_compare_digest = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real_compare_digest(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    # The matching signature first: the second is compared all the same, with both secrets.
    header = f"{v1(signed_by)} {v1(b'another key we do not hold')}"
    verdict = VERIFIER.verify(source, request_of(BODY, headers_of(header)), SENT_AT)
    assert isinstance(verdict, Accept) == (signed_by == KEY)
    assert len(compared) == 2 * len(source.secrets)


# --- headers -------------------------------------------------------------------------------


@pytest.mark.parametrize("absent", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_rejects_a_request_missing_a_header(source: SourceConfig, absent: str) -> None:
    headers = [(name, value) for name, value in headers_of(v1(KEY)) if name != absent]
    assert judge(source, request_of(BODY, headers)) is Reason.MISSING_SIGNATURE


def test_rejects_an_empty_id(source: SourceConfig) -> None:
    request = request_of(BODY, headers_of(v1(KEY, message_id=""), message_id=""))
    assert judge(source, request) is Reason.MISSING_SIGNATURE


@pytest.mark.parametrize("duplicated", ["webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE"])
def test_rejects_a_header_sent_twice(source: SourceConfig, duplicated: str) -> None:
    headers = headers_of(v1(KEY))
    value = dict(headers)[duplicated.lower()]
    assert judge(source, request_of(BODY, [*headers, (duplicated, value)])) is Reason.MALFORMED_SIGNATURE


def test_header_names_are_case_insensitive(source: SourceConfig) -> None:
    headers = [(name.upper(), value) for name, value in headers_of(v1(KEY))]
    assert judge(source, request_of(BODY, headers)) == ACCEPTED


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize("skew", [TOLERANCE, -TOLERANCE], ids=["old", "future"])
def test_accepts_a_timestamp_exactly_at_the_edge(source: SourceConfig, skew: int) -> None:
    assert judge(source, request_of(BODY, headers_of(v1(KEY))), SENT_AT + skew) == ACCEPTED


@pytest.mark.parametrize("skew", [TOLERANCE + 1, -TOLERANCE - 1, TOLERANCE + 0.001], ids=["old", "future", "just"])
def test_rejects_a_timestamp_past_the_edge(source: SourceConfig, skew: float) -> None:
    assert judge(source, request_of(BODY, headers_of(v1(KEY))), SENT_AT + skew) is Reason.STALE_TIMESTAMP


def test_rejects_a_timestamp_in_milliseconds(source: SourceConfig) -> None:
    millis = SENT_AT * 1000
    request = request_of(BODY, headers_of(v1(KEY, timestamp=millis), timestamp=str(millis)))
    assert judge(source, request) is Reason.STALE_TIMESTAMP


@pytest.mark.parametrize("timestamp", ["", "-1", "1767600000.0", "1.7676e9", "١٢٣", "9" * 40])
def test_rejects_a_timestamp_that_is_not_whole_seconds(source: SourceConfig, timestamp: str) -> None:
    assert judge(source, request_of(BODY, headers_of(v1(KEY), timestamp=timestamp))) is Reason.MALFORMED_SIGNATURE


def test_a_stale_request_is_refused_before_its_signature_is_read(source: SourceConfig) -> None:
    assert judge(source, request_of(BODY, headers_of("v1,not base64!")), SENT_AT + 3600) is Reason.STALE_TIMESTAMP


def test_keeps_the_three_headers(source: SourceConfig) -> None:
    assert VERIFIER.kept_headers(source) == {"webhook-id", "webhook-timestamp", "webhook-signature"}


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_",
        "whsec_not base64",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS-",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwa",
        "whsec_YW=Jj",
    ],
    ids=["no-prefix", "other-prefix", "empty", "spaces", "url-safe-alphabet", "impossible-length", "padding-inside"],
)
def test_a_secret_that_is_not_whsec_base64_is_refused_at_startup(secret: str) -> None:
    with pytest.raises(ConfigError) as caught:
        source_of("standard_webhooks", secrets=[SECRET, secret])
    assert caught.value.key == "secrets"
    assert "secret 2" in str(caught.value)
    encoded = secret.removeprefix("whsec_")
    assert not encoded or encoded not in str(caught.value)


@pytest.mark.parametrize("encoded", ["YWJjZA==", "YWJjZA"], ids=["padded", "unpadded"])
def test_a_secret_may_leave_out_its_base64_padding(encoded: str) -> None:
    source = source_of("standard_webhooks", secrets=["whsec_" + encoded])
    assert judge(source, request_of(BODY, headers_of(v1(b"abcd")))) == ACCEPTED


@pytest.mark.parametrize(
    ("value", "message"),
    [(7, "must name"), ("", "must name"), ("data", "not its type"), ("timestamp", "not its type")],
)
def test_a_type_field_that_cannot_be_a_type_is_refused_at_startup(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        source_of("standard_webhooks", secrets=[SECRET], type_field=value)
    assert caught.value.key == "type_field"
    assert caught.value.source == "test-standard-webhooks"


def test_a_type_field_names_any_other_top_level_field() -> None:
    source = source_of("standard_webhooks", secrets=[SECRET], type_field="event_type")
    assert source.options == {"type_field": "event_type"}
