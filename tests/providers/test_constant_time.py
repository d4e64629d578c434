"""Every comparison with a secret goes through hmac.compare_digest, on accept and reject alike,
and every configured secret is tried whichever one signed (so timing does not tell which)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import pytest

from hookbus.config import SourceConfig
from hookbus.request import Accept, Reject
from ingest.decision import decide
from tests.providers.builders import hmac_of, request_of, source_of

SECRETS = ("first-secret-0123456789", "second-secret-0123456789")
API_KEY = "api-key-0123456789abcdef"
TOKEN = "shared-token-0123456789"
BODY = b'{"event":"something","id":"e-1"}'
NOW = 1_700_000_000
WRONG = bytes(32)


@dataclass
class CompareSpy:
    calls: list[tuple[bytes, bytes]]

    def __call__(self, a: bytes, b: bytes) -> bool:
        self.calls.append((a, b))
        return _real_compare_digest(a, b)

    def compared(self, received: bytes) -> int:
        return sum(received in call for call in self.calls)


_real_compare_digest = hmac.compare_digest


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> CompareSpy:
    spy = CompareSpy(calls=[])
    monkeypatch.setattr(hmac, "compare_digest", spy)
    return spy


def signed_headers(provider: str, signature: bytes) -> dict[str, str]:
    """Headers carrying ``signature`` the way ``provider`` sends it, for a request sent at NOW."""
    if provider == "october":
        return {"X-O5R-HASH": signature.hex(), "X-O5R-TIMESTAMP": str(NOW * 1000)}
    if provider == "officernd":
        return {"officernd-signature": f"t={NOW},signature={signature.hex()}"}
    if provider == "offerte_adviseur":
        return {"x-offerte-adviseur-signature": signature.hex()}
    return {"X-Signature": signature.hex()}


def signed_parts(provider: str) -> tuple[bytes, ...]:
    """What ``provider`` signs for BODY sent at NOW."""
    return {
        "october": (str(NOW * 1000).encode(), BODY),
        "officernd": (BODY, b".", str(NOW).encode()),
        "offerte_adviseur": (BODY,),
        "generic": (BODY,),
    }[provider]


@pytest.fixture(params=["october", "officernd", "offerte_adviseur", "generic"])
def signing_source(
    request: pytest.FixtureRequest,
) -> SourceConfig:
    provider: str = request.param
    if provider == "generic":
        return source_of(provider, secrets=list(SECRETS), signature={"header": "X-Signature"})
    return source_of(provider, secrets=list(SECRETS))


@pytest.mark.parametrize("signer", SECRETS, ids=["first-secret", "second-secret"])
def test_signatures_are_compared_in_constant_time_with_every_secret(
    signing_source: SourceConfig, spy: CompareSpy, signer: str
) -> None:
    signature = hmac_of(signer, *signed_parts(signing_source.provider))
    accepted = decide(signing_source, request_of(BODY, signed_headers(signing_source.provider, signature)), NOW)
    assert isinstance(accepted, Accept)
    assert spy.compared(signature) == len(SECRETS)

    spy.calls.clear()
    rejected = decide(signing_source, request_of(BODY, signed_headers(signing_source.provider, WRONG)), NOW)
    assert isinstance(rejected, Reject)
    assert spy.compared(WRONG) == len(SECRETS)


@pytest.mark.parametrize("provider", ["octamile", "generic"])
@pytest.mark.parametrize("presented", [API_KEY, "not-the-key"], ids=["right-key", "wrong-key"])
def test_api_keys_and_required_headers_are_compared_in_constant_time(
    spy: CompareSpy, provider: str, presented: str
) -> None:
    extra = {"required_headers": {"X-Token": TOKEN}} if provider == "generic" else {}
    source = source_of(provider, api_key=API_KEY, **extra)
    request = request_of(BODY, {"X-API-Key": presented, "X-Token": TOKEN})
    verdict = decide(source, request, NOW)
    assert isinstance(verdict, Accept) == (presented == API_KEY)
    assert (presented.encode(), API_KEY.encode()) in spy.calls
    if isinstance(verdict, Accept) and provider == "generic":
        assert (TOKEN.encode(), TOKEN.encode()) in spy.calls
