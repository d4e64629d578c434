"""The Gitea verifier on its own: which requests it accepts, and why it rejects the others.

The expected signatures are computed here with :mod:`hmac` from Gitea's documentation
(hex HMAC-SHA256 of the body), independently of the verifier and of the examples.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import pytest
from hookbus_gitea import PROVIDER
from multidict import CIMultiDict, CIMultiDictProxy

from hookbus.config import SourceConfig, parse_source
from hookbus.errors import ConfigError
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, RawRequest, Reason, Reject
from hookbus.tracecontext import TRACE_HEADERS
from ingest.decision import check_sources, decide, kept_headers

KEY = b"gitea-webhook-key-1"
NEXT_KEY = b"gitea-webhook-key-2"
BODY = b'{"ref":"refs/heads/main","before":"0a1b","after":"2c3d","commits":[],"repository":{"id":140}}'
NOW = 1_764_670_000.0


def _source(*keys: bytes) -> SourceConfig:
    source = parse_source({"secrets": [key.decode() for key in keys]}, name="gitea-test", provider="gitea")
    check_sources([source])
    return source


def _signature(key: bytes, body: bytes = BODY) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _request(headers: Sequence[tuple[str, str]], body: bytes = BODY) -> RawRequest:
    return RawRequest(
        method="POST", body=body, client_addr="198.51.100.7", headers=CIMultiDictProxy(CIMultiDict(headers))
    )


def _verdict(source: SourceConfig, request: RawRequest) -> Accept | Reject:
    return PROVIDER.verifier.verify(source, request, NOW)


def test_a_body_signed_with_the_key_is_accepted() -> None:
    request = _request([("X-Gitea-Signature", _signature(KEY)), ("X-Gitea-Event", "push")])
    assert _verdict(_source(KEY), request) == Accept(AuthMethod.SIGNATURE)
    # The gateway's whole decision agrees, and the signature is compared case-insensitively (hex).
    assert decide(_source(KEY), request, NOW) == Accept(AuthMethod.SIGNATURE)
    upper = _request([("X-Gitea-Signature", _signature(KEY).upper())])
    assert _verdict(_source(KEY), upper) == Accept(AuthMethod.SIGNATURE)


@pytest.mark.parametrize("signing_key", [KEY, NEXT_KEY])
def test_any_of_two_keys_may_have_signed(signing_key: bytes) -> None:
    request = _request([("X-Gitea-Signature", _signature(signing_key))])
    assert _verdict(_source(KEY, NEXT_KEY), request) == Accept(AuthMethod.SIGNATURE)


def _reason(request: RawRequest, source: SourceConfig | None = None) -> Reason:
    verdict = _verdict(source or _source(KEY), request)
    assert isinstance(verdict, Reject)
    # A rejection never repeats what was sent.
    assert _signature(KEY) not in verdict.detail
    assert BODY.decode() not in verdict.detail
    return verdict.reason


def test_no_signature_is_a_missing_signature() -> None:
    assert _reason(_request([("X-Gitea-Event", "push")])) is Reason.MISSING_SIGNATURE
    # The GitHub-compatible copy Gitea also sends is not what is checked.
    assert _reason(_request([("X-Hub-Signature-256", "sha256=" + _signature(KEY))])) is Reason.MISSING_SIGNATURE


@pytest.mark.parametrize("sent", ["not hex at all", "abc", "sha256=" + "0" * 64, ""])
def test_a_signature_that_is_not_hex_is_malformed(sent: str) -> None:
    assert _reason(_request([("X-Gitea-Signature", sent)])) is Reason.MALFORMED_SIGNATURE


def test_the_signature_header_sent_twice_is_malformed() -> None:
    twice = _request([("X-Gitea-Signature", _signature(KEY)), ("X-Gitea-Signature", _signature(KEY))])
    assert _reason(twice) is Reason.MALFORMED_SIGNATURE


def test_another_key_is_a_bad_signature() -> None:
    assert _reason(_request([("X-Gitea-Signature", _signature(b"someone-else"))])) is Reason.BAD_SIGNATURE
    assert _reason(_request([("X-Gitea-Signature", _signature(NEXT_KEY))])) is Reason.BAD_SIGNATURE


def test_a_tampered_body_is_a_bad_signature() -> None:
    tampered = BODY.replace(b"main", b"prod")
    assert _reason(_request([("X-Gitea-Signature", _signature(KEY))], body=tampered)) is Reason.BAD_SIGNATURE
    # Even a byte of whitespace: the signature is over the bytes as sent, never re-encoded JSON.
    assert _reason(_request([("X-Gitea-Signature", _signature(KEY))], body=BODY + b"\n")) is Reason.BAD_SIGNATURE


def test_a_shorter_signature_is_a_bad_signature() -> None:
    sha1 = hmac.new(KEY, BODY, hashlib.sha1).hexdigest()
    assert _reason(_request([("X-Gitea-Signature", sha1)])) is Reason.BAD_SIGNATURE


def test_a_source_needs_a_secret() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_source({}, name="gitea-test", provider="gitea")
    assert raised.value.key == "secrets"


def test_the_headers_the_mapper_needs_are_kept() -> None:
    # Beside them the gateway keeps the trace context, whatever the provider.
    assert kept_headers(_source(KEY)) == {"x-gitea-signature", "x-gitea-event", "x-gitea-delivery"} | TRACE_HEADERS
