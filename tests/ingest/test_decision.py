"""The decision: every shared vector, the checks every source shares, their order, and
properties that must hold for any request at all."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hookbus.config import SourceConfig, parse_source
from hookbus.errors import ConfigError
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, RawRequest, Reason, Reject, RequestHead
from hookbus.tracecontext import TRACE_HEADERS
from ingest.decision import check_sources, decide, decide_body, decide_head, kept_headers
from providers import BUILT_IN
from tests.providers.builders import hmac_of, request_of, source_of
from tests.support import vector_files, vectors_path
from tools.vectors import load_vectors

API_KEY = "api_3f9a7c1e5b2d4f6a8c0e1a3b5d7f9b1d"
SECRET = "whsec_5b2d4f6a8c0e1a3b5d7f9b1d3f9a7c1e"
BODY = b'{"id":"evt_1","type":"thing.happened"}'
NOW = 1_700_000_000


def reason_of(source: SourceConfig, request: RawRequest) -> Reason | None:
    """The reason ``request`` is rejected, ``None`` when it is accepted."""
    verdict = decide(source, request, NOW)
    return verdict.reason if isinstance(verdict, Reject) else None


# --- the shared vectors ------------------------------------------------------------------


def _vector_params() -> list[Any]:
    folder = vectors_path()
    if not folder.is_dir():
        # One placeholder, so the vectors_dir fixture reports the missing folder (skip, or fail in CI).
        return [pytest.param(None, None, id="vectors-missing")]
    return [
        pytest.param(str(path.relative_to(folder)), index, id=f"{path.stem}/{entry.name}")
        for path in vector_files(folder)
        for index, entry in enumerate(load_vectors(path))
    ]


@pytest.mark.parametrize(("file", "index"), _vector_params())
def test_vector(vectors_dir: Path, file: str, index: int) -> None:
    entry = load_vectors(vectors_dir / file)[index]
    verdict = decide(entry.source, entry.request, entry.now)
    if entry.expect == "accept":
        assert isinstance(verdict, Accept), verdict
    else:
        assert isinstance(verdict, Reject)
        assert verdict.reason.value == entry.reason


def test_every_provider_has_vectors(vectors_dir: Path) -> None:
    # The shared vectors cover hookbus's own providers; a third-party one (examples/gitea-provider)
    # brings its own tests and golden cases in its package.
    assert {path.stem for path in vector_files(vectors_dir)} >= {item.name for item in BUILT_IN}


# --- the checks every source shares --------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "query", "reason"),
    [
        ({"X-API-Key": API_KEY}, {}, None),
        ({"x-api-key": API_KEY}, {}, None),
        ({}, {"api-key": API_KEY}, None),
        ({"X-API-Key": API_KEY}, {"api-key": API_KEY}, None),
        ({}, {}, Reason.BAD_API_KEY),
        ({"X-API-Key": API_KEY.upper()}, {}, Reason.BAD_API_KEY),
        ({"X-API-Key": API_KEY[:-1]}, {}, Reason.BAD_API_KEY),
        ({"X-API-Key": API_KEY}, {"api-key": "other"}, Reason.BAD_API_KEY),
        ({}, [("api-key", "other"), ("api-key", API_KEY)], Reason.BAD_API_KEY),
        ({}, {"api_key": API_KEY}, Reason.BAD_API_KEY),
        ({"Authorization": f"Bearer {API_KEY}"}, {}, Reason.BAD_API_KEY),
        ({"X-API-Key": "ключ\udcff"}, {}, Reason.BAD_API_KEY),
    ],
    ids=[
        "header",
        "header-lowercase",
        "query",
        "both-agree",
        "none",
        "other-case",
        "truncated",
        "both-disagree",
        "query-twice-one-wrong",
        "other-parameter-name",
        "authorization-header",
        "non-ascii",
    ],
)
def test_api_key(headers: dict[str, str], query: Any, reason: Reason | None) -> None:
    source = source_of("octamile", api_key=API_KEY)
    assert reason_of(source, request_of(headers=headers, query=query)) is reason


@pytest.mark.parametrize(
    ("client_addr", "reason"),
    [
        ("198.51.100.7", None),
        ("2001:db8::1", None),
        ("2001:DB8:0:0::ffff", None),
        ("::ffff:198.51.100.7", None),
        ("198.51.101.7", Reason.IP_NOT_ALLOWED),
        ("2001:db9::1", Reason.IP_NOT_ALLOWED),
        ("::ffff:203.0.113.1", Reason.IP_NOT_ALLOWED),
        ("", Reason.IP_NOT_ALLOWED),
        ("not-an-address", Reason.IP_NOT_ALLOWED),
        ("198.51.100.7:443", Reason.IP_NOT_ALLOWED),
    ],
)
def test_ip_allowlist(client_addr: str, reason: Reason | None) -> None:
    source = source_of("octamile", ip_allowlist=["198.51.100.0/24", "2001:db8::/32"])
    assert reason_of(source, request_of(client_addr=client_addr)) is reason


def test_ip_allowlist_open_to_all_must_say_both_families() -> None:
    source = source_of("octamile", ip_allowlist=["0.0.0.0/0"])
    assert reason_of(source, request_of(client_addr="192.0.2.1")) is None
    assert reason_of(source, request_of(client_addr="2001:db8::1")) is Reason.IP_NOT_ALLOWED


@pytest.mark.parametrize(
    ("method", "reason"),
    [("POST", None), ("PUT", None), ("GET", Reason.METHOD_NOT_ALLOWED), ("post", Reason.METHOD_NOT_ALLOWED)],
)
def test_methods(method: str, reason: Reason | None) -> None:
    source = source_of("generic", api_key=API_KEY, methods=["post", "PUT"])
    assert reason_of(source, request_of(method=method, headers={"X-API-Key": API_KEY})) is reason


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-Source-System": "crm", "X-Tenant": "t1"}, None),
        ({"x-source-system": "crm", "X-TENANT": "t1"}, None),
        ({"X-Source-System": "CRM", "X-Tenant": "t1"}, Reason.HEADER_NOT_ALLOWED),
        ({"X-Source-System": "crm"}, Reason.HEADER_NOT_ALLOWED),
        ([("X-Source-System", "crm"), ("X-Source-System", "crm"), ("X-Tenant", "t1")], Reason.HEADER_NOT_ALLOWED),
        ({"X-Source-System": "crm\udcff", "X-Tenant": "t1"}, Reason.HEADER_NOT_ALLOWED),
    ],
    ids=["exact", "names-in-any-case", "value-in-other-case", "one-missing", "repeated", "non-utf8"],
)
def test_required_headers(headers: Any, reason: Reason | None) -> None:
    source = source_of(
        "generic", ip_allowlist=["0.0.0.0/0"], required_headers={"X-Source-System": "crm", "X-Tenant": "t1"}
    )
    assert reason_of(source, request_of(headers=headers)) is reason


def test_body_size_limit_is_inclusive() -> None:
    source = source_of("octamile", api_key=API_KEY, max_body_bytes=len(BODY))
    assert reason_of(source, request_of(BODY, {"X-API-Key": API_KEY})) is None
    assert reason_of(source, request_of(BODY + b" ", {"X-API-Key": API_KEY})) is Reason.TOO_LARGE


def test_checks_cheap_and_public_things_before_credentials() -> None:
    source = source_of(
        "generic",
        api_key=API_KEY,
        ip_allowlist=["198.51.100.0/24"],
        max_body_bytes=len(BODY),
        required_headers={"X-Token": "shared-token"},
    )
    everything_wrong = {"method": "PATCH", "body": BODY + b"!", "client_addr": "203.0.113.1", "headers": {}}
    steps = [
        ("method", "POST", Reason.METHOD_NOT_ALLOWED),
        ("body", BODY, Reason.TOO_LARGE),
        ("client_addr", "198.51.100.7", Reason.IP_NOT_ALLOWED),
        ("headers", {"X-API-Key": API_KEY}, Reason.BAD_API_KEY),
        ("headers", {"X-API-Key": API_KEY, "X-Token": "shared-token"}, Reason.HEADER_NOT_ALLOWED),
    ]
    fields: dict[str, Any] = dict(everything_wrong)
    for field, fixed, reason in steps:
        assert reason_of(source, request_of(**fields)) is reason
        fields[field] = fixed
    assert decide(source, request_of(**fields), NOW) == Accept(AuthMethod.API_KEY)


def test_a_verified_signature_names_the_signature_even_with_an_api_key() -> None:
    source = source_of("offerte_adviseur", secrets=[SECRET], api_key=API_KEY)
    signature = hmac_of(SECRET, BODY).hex()
    request = request_of(BODY, {"x-offerte-adviseur-signature": signature, "X-API-Key": API_KEY})
    assert decide(source, request, NOW) == Accept(AuthMethod.SIGNATURE)
    assert reason_of(source, request_of(BODY, {"x-offerte-adviseur-signature": signature})) is Reason.BAD_API_KEY


def test_kept_headers_are_the_providers_less_the_required_ones() -> None:
    # The trace context is kept for every source (hookbus.tracecontext).
    assert kept_headers(source_of("october", secrets=[SECRET])) == {"x-o5r-hash", "x-o5r-timestamp"} | TRACE_HEADERS
    generic = source_of(
        "generic", api_key=API_KEY, required_headers={"X-Tenant": "t1"}, mapping={"type": "header:X-Event-Type"}
    )
    assert kept_headers(generic) == {"x-event-type"} | TRACE_HEADERS
    # ... unless a source requires it as a shared token: then its value is never kept.
    tokened = source_of("generic", api_key=API_KEY, required_headers={"Traceparent": "t1"})
    assert kept_headers(tokened) == {"tracestate"}


def test_check_sources_names_the_file_and_the_source() -> None:
    good = source_of("octamile", api_key=API_KEY)
    bad = parse_source({"secrets": [SECRET], "api_key": API_KEY}, name="cars", provider="octamile")
    with pytest.raises(ConfigError) as raised:
        check_sources([good, bad], file="hookbus.yaml")
    assert str(raised.value).startswith("hookbus.yaml: source 'cars': key 'secrets': ")


# --- properties over any request -------------------------------------------------------------

SIGNED_BODY = b'{"event":"signed","id":"e-1"}'
SIGNATURE = hmac_of(SECRET, SIGNED_BODY).hex()
SIGNATURE_WITH_TIMESTAMP = hmac_of(SECRET, f"{NOW * 1000}".encode(), SIGNED_BODY).hex()
SIGNATURE_DOTTED = hmac_of(SECRET, SIGNED_BODY, f".{NOW}".encode()).hex()

# Sources reaching as deep into verification as a stranger's request can, and the headers that
# make SIGNED_BODY verify for each.
PROPERTY_CASES: dict[str, tuple[SourceConfig, dict[str, str]]] = {
    "october": (
        source_of("october", secrets=["old", SECRET]),
        {"X-O5R-HASH": SIGNATURE_WITH_TIMESTAMP, "X-O5R-TIMESTAMP": str(NOW * 1000)},
    ),
    "officernd": (
        source_of("officernd", secrets=[SECRET]),
        {"officernd-signature": f"t={NOW},signature={SIGNATURE_DOTTED}"},
    ),
    "offerte_adviseur": (
        source_of("offerte_adviseur", secrets=[SECRET]),
        {"x-offerte-adviseur-signature": SIGNATURE},
    ),
    "generic": (
        source_of(
            "generic",
            secrets=[SECRET],
            methods=["POST", "PUT"],
            ip_allowlist=["0.0.0.0/0", "::/0"],
            signature={"header": "X-Signature", "prefix": "sha256="},
        ),
        {"X-Signature": f"sha256={SIGNATURE}"},
    ),
    "octamile": (source_of("octamile", api_key=API_KEY, ip_allowlist=["198.51.100.0/24", "2001:db8::/32"]), {}),
}

# Any text, including lone surrogates (what a server decodes undecodable bytes to).
any_text = st.text(st.characters(exclude_categories=()), max_size=80)
header_names = (
    st.sampled_from(
        [
            "X-O5R-HASH",
            "X-O5R-TIMESTAMP",
            "officernd-signature",
            "x-offerte-adviseur-signature",
            "X-Signature",
            "X-API-Key",
        ]
    )
    | any_text
)
header_values = st.sampled_from([SIGNATURE, f"t={NOW},signature={SIGNATURE}", str(NOW * 1000), API_KEY]) | any_text
requests = st.builds(
    request_of,
    body=st.binary(max_size=2048),
    headers=st.lists(st.tuples(header_names, header_values), max_size=8),
    method=st.sampled_from(["POST", "PUT", "GET"]) | any_text,
    query=st.lists(
        st.tuples(st.sampled_from(["api-key"]) | any_text, st.sampled_from([API_KEY]) | any_text), max_size=4
    ),
    client_addr=st.ip_addresses().map(str) | any_text,
)
moments = st.floats(min_value=0, max_value=2**33, allow_nan=False)


@pytest.mark.parametrize("provider", sorted(PROPERTY_CASES))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests, now=moments)
def test_decide_never_raises(provider: str, request: RawRequest, now: float) -> None:
    source, _ = PROPERTY_CASES[provider]
    assert isinstance(decide(source, request, now), Accept | Reject)


@pytest.mark.parametrize("provider", sorted(name for name in PROPERTY_CASES if name != "octamile"))
@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=4096))
def test_a_random_body_never_verifies(provider: str, body: bytes) -> None:
    source, headers = PROPERTY_CASES[provider]
    assert isinstance(decide(source, request_of(SIGNED_BODY, headers), NOW), Accept)
    assume(body != SIGNED_BODY)
    verdict = decide(source, request_of(body, headers), NOW)
    assert isinstance(verdict, Reject)
    assert verdict.reason is Reason.BAD_SIGNATURE


# --- the checks that need no body ------------------------------------------------------------

BODYLESS_REASONS = {
    Reason.METHOD_NOT_ALLOWED,
    Reason.TOO_LARGE,
    Reason.IP_NOT_ALLOWED,
    Reason.BAD_API_KEY,
    Reason.HEADER_NOT_ALLOWED,
}


@pytest.mark.parametrize("provider", sorted(PROPERTY_CASES))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=requests, now=moments, other_body=st.binary(max_size=64))
def test_the_head_decides_alone_what_needs_no_body(
    provider: str, request: RawRequest, now: float, other_body: bytes
) -> None:
    source, _ = PROPERTY_CASES[provider]
    before_body = decide_head(source, request.head)
    verdict = decide(source, request, now)
    if before_body is not None:
        # The whole decision is the head's refusal, whatever the body turns out to be.
        assert verdict == before_body
        assert before_body.reason in BODYLESS_REASONS
    else:
        assert verdict == decide_body(source, request, now)
    # Of the body, the head knows only the length declared for it.
    other = dataclasses.replace(request, body=other_body)
    assert decide_head(source, other.head) == decide_head(
        source, dataclasses.replace(request.head, declared_length=len(other_body))
    )


def test_a_declared_length_over_the_limit_is_refused_by_the_head() -> None:
    source = source_of("octamile", api_key=API_KEY, max_body_bytes=16)
    head = RequestHead(method="POST", client_addr="198.51.100.7", declared_length=17)
    refused = decide_head(source, head)
    assert refused is not None
    assert refused.reason is Reason.TOO_LARGE
    assert decide_head(source, dataclasses.replace(head, declared_length=None)) == decide_head(
        source, dataclasses.replace(head, declared_length=16)
    )
