"""Octamile signs nothing: an API key and an IP allowlist authenticate it (see test_decision)."""

from __future__ import annotations

import pytest

from hookbus.errors import ConfigError
from hookbus.provider import provider
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept
from ingest.decision import decide
from tests.providers.builders import request_of, source_of

API_KEY = "om_live_4b1f9c7e2a6d8b0c3e5f7a9b1c3d5e7f"
BODY = b'{"product":"vhcl-tprt-1111","status":"d","statusNote":"no cover"}'
NOW = 1_767_225_600


def test_refuses_secrets_it_would_never_check() -> None:
    with pytest.raises(ConfigError) as raised:
        source_of("octamile", secrets=["unused"], api_key=API_KEY)
    assert raised.value.key == "secrets"
    assert "source 'test-octamile'" in str(raised.value)


@pytest.mark.parametrize(
    ("raw", "auth"),
    [
        ({"api_key": API_KEY, "ip_allowlist": ["198.51.100.0/24"]}, AuthMethod.API_KEY),
        ({"api_key": API_KEY}, AuthMethod.API_KEY),
        ({"ip_allowlist": ["198.51.100.0/24"]}, AuthMethod.IP_ALLOWLIST),
    ],
    ids=["key-and-allowlist", "key-only", "allowlist-only"],
)
def test_accepts_with_what_the_source_authenticates_by(raw: dict[str, object], auth: AuthMethod) -> None:
    source = source_of("octamile", **raw)
    request = request_of(BODY, {"Content-Type": "application/json"}, query={"api-key": API_KEY})
    assert decide(source, request, NOW) == Accept(auth)


def test_keeps_no_header() -> None:
    assert provider("octamile").verifier.kept_headers(source_of("octamile", api_key=API_KEY)) == frozenset()
