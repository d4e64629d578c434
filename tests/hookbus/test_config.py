"""Loading the configuration file: a good file, and every startup error naming file, source and key."""

from __future__ import annotations

import dataclasses
import ipaddress
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from hookbus.config import (
    DEFAULT_MAX_BODY_BYTES,
    HookbusConfig,
    RateLimit,
    config_schema,
    load_config,
    parse_config,
    parse_source,
)
from hookbus.errors import ConfigError
from hookbus.provider import Provider, provider, providers
from hookbus.settings import Secret
from ingest.decision import check_sources
from normalizer.settings import NormalizerSettings
from sinks.configure import RunnerSettings

GOOD = """\
kafka:
  bootstrap_servers: broker-1:9092,broker-2:9092
  raw_topic: webhooks.raw
trusted_proxies: [10.0.0.0/8, "fd00::/8"]
gateway:
  port: 9000
sources:
  - name: october
    provider: october
    secrets: ["${OCTOBER_KEY}", "${OCTOBER_KEY_OLD:-}"]
    tolerance_seconds: 120
  - name: desks
    provider: officernd
    secrets: ["${file:SECRET_FILE}"]
    rate_limit: {per_second: 5}
  - name: leads
    provider: offerte_adviseur
    secrets: [oa-secret]
    max_body_bytes: 65536
  - name: cars
    provider: octamile
    api_key: ${OCTAMILE_KEY}
    ip_allowlist: [198.51.100.0/24, "2001:db8::/32"]
  - name: crm
    provider: generic
    secrets: [crm-secret]
    methods: [post, put]
    required_headers: {X-Source-System: crm}
    signature: {header: X-Signature, algorithm: sha512, encoding: base64, prefix: "sha512=",
                timestamp_header: X-Timestamp, timestamp_unit: ms}
    mapping: {type: "header:X-Event-Type"}
"""


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hookbus.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_checked(path: Path) -> HookbusConfig:
    """The file as a service loads it at startup: parsed, then each provider's options checked."""
    config = load_config(path)
    check_sources(config.sources, file=config.path)
    return config


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    secret_file = tmp_path / "officernd.secret"
    secret_file.write_text("desk-secret-from-a-file\n", encoding="utf-8")
    monkeypatch.setenv("OCTOBER_KEY", "october-key")
    monkeypatch.delenv("OCTOBER_KEY_OLD", raising=False)
    monkeypatch.setenv("OCTAMILE_KEY", "om-key")
    return secret_file


def test_loads_a_good_file(tmp_path: Path, environment: Path) -> None:
    path = write_config(tmp_path, GOOD.replace("SECRET_FILE", str(environment)))
    config = load_checked(path)

    assert config.path == str(path)
    assert config.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert config.kafka.raw_topic == "webhooks.raw"
    assert config.gateway.port == 9000
    assert config.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    assert [source.name for source in config.sources] == ["october", "desks", "leads", "cars", "crm"]

    october, desks, leads, cars, crm = config.sources
    # ${OCTOBER_KEY_OLD:-} is empty between rotations and is left out.
    assert [secret.value for secret in october.secrets] == [b"october-key"]
    assert october.tolerance_seconds == 120
    # ${file:...} is the file's content without its trailing newline.
    assert [secret.value for secret in desks.secrets] == [b"desk-secret-from-a-file"]
    assert desks.rate_limit == RateLimit(per_second=5.0, burst=5)
    assert desks.spool  # OfficeRnD does not retry: spool by default
    assert not october.spool
    assert leads.max_body_bytes == 65536
    assert october.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert cars.api_key is not None
    assert cars.api_key.value == b"om-key"
    assert "om-key" not in repr(cars)
    assert cars.ip_allowlist == (ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("2001:db8::/32"))
    assert crm.methods == ("POST", "PUT")
    assert crm.required_headers == {"X-Source-System": "crm"}
    assert crm.options["signature"]["timestamp_unit"] == "ms"


def test_both_rotation_secrets_are_kept_while_both_are_set(
    tmp_path: Path, environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCTOBER_KEY_OLD", "october-old-key")
    config = load_checked(write_config(tmp_path, GOOD.replace("SECRET_FILE", str(environment))))
    assert [secret.value for secret in config.sources[0].secrets] == [b"october-key", b"october-old-key"]


# References are expanded at the leaf, once, as each source reads its keys: a reference that
# cannot be expanded is reported against its source and key.
SOURCE_ERRORS = [
    ("provider: octobre\n    secrets: [k]", "provider", "unknown provider 'octobre'"),
    ("provider: octamile\n    api_key: k\n    apikey: k", "apikey", "unknown key"),
    ("provider: officernd", "secrets", "officernd signs its requests"),
    pytest.param(
        "provider: october\n    secrets: ['${HOOKBUS_TEST_UNSET_VARIABLE}']",
        "secrets",
        "HOOKBUS_TEST_UNSET_VARIABLE is not set",
    ),
    ("provider: october\n    secrets: ['${HOOKBUS_TEST_UNSET_VARIABLE:-}']", "secrets", "give at least one secret"),
    pytest.param(
        "provider: october\n    secrets: ['${file:/nonexistent/hookbus.secret}']",
        "secrets",
        "cannot read",
    ),
    ("provider: octamile\n    api_key: k\n    ip_allowlist: [198.51.100.0/33]", "ip_allowlist", "not an IP address"),
    ("provider: octamile\n    ip_allowlist: [example.com]", "ip_allowlist", "not an IP address"),
    ("provider: octamile\n    methods: [POST]", "api_key", "would accept anyone"),
    ("provider: octamile\n    api_key: k\n    secrets: [s]", "secrets", "octamile signs nothing"),
    ("provider: generic\n    api_key: k\n    secrets: [s]", "secrets", "only used with the signature option"),
    ("provider: generic\n    signature: {header: X-Signature}", "secrets", "needs at least one secret"),
    (
        "provider: generic\n    secrets: [s]\n    signature: {header: X-Signature, algorithm: md5}",
        "signature.algorithm",
        "must be one of sha256, sha512, sha1",
    ),
    (
        "provider: generic\n    secrets: [s]\n    signature: {header: X-Signature, encodng: hex}",
        "signature.encodng",
        "unknown key",
    ),
]


@pytest.mark.parametrize(
    ("body", "key", "detail"),
    SOURCE_ERRORS,
    ids=[
        "unknown-provider",
        "unknown-key",
        "signing-provider-without-secret",
        "unset-variable",
        "only-empty-secrets",
        "unreadable-secret-file",
        "bad-cidr",
        "hostname-in-allowlist",
        "open-to-anyone",
        "unused-secrets",
        "generic-secrets-without-signature",
        "generic-signature-without-secrets",
        "generic-bad-signature-option",
        "generic-unknown-signature-option",
    ],
)
def test_a_bad_source_names_file_source_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, key: str, detail: str
) -> None:
    monkeypatch.delenv("HOOKBUS_TEST_UNSET_VARIABLE", raising=False)
    path = write_config(tmp_path, f"sources:\n  - name: hooks\n    {body}\n")
    with pytest.raises(ConfigError) as raised:
        load_checked(path)
    error = raised.value
    assert (error.file, error.source, error.key) == (str(path), "hooks", key)
    assert str(error).startswith(f"{path}: source 'hooks': key '{key}': ")
    assert detail in str(error)
    assert "\n" not in str(error)


def test_a_secret_is_taken_literally_once_expanded(
    tmp_path: Path, environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCTOBER_KEY", "k${HOME}")
    config = load_checked(write_config(tmp_path, GOOD.replace("SECRET_FILE", str(environment))))
    assert [secret.value for secret in config.sources[0].secrets] == [b"k${HOME}"]


def test_a_duplicate_source_name_is_refused(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """\
        sources:
          - {name: leads, provider: offerte_adviseur, secrets: [a]}
          - {name: leads, provider: octamile, api_key: k}
        """,
    )
    with pytest.raises(ConfigError) as raised:
        load_checked(path)
    assert str(raised.value) == f"{path}: source 'leads': key 'name': the name is used by another source too"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sources: [\n", "not valid YAML"),
        ("kafka: {bootstrap: x}\n", "key 'kafka.bootstrap': unknown key"),
        ("sorces: []\n", "key 'sorces': unknown key"),
        ("trusted_proxies: [10.0.0.0/40]\n", "key 'trusted_proxies': "),
        ("kafka: {compression_type: brotli}\n", "key 'kafka.compression_type': 'brotli' is not one of"),
        ("gateway: {port: eighty}\n", "key 'gateway.port': must be a whole number"),
        ("- kafka\n", "the file must be a mapping, not list"),
        ("sources: {name: a}\n", "key 'sources': must be a list of sources"),
        ("sinks: {archive: [x]}\n", "key 'sinks.archive': must be a mapping, not list"),
    ],
    ids=[
        "not-yaml",
        "unknown-kafka-key",
        "unknown-top-level-key",
        "bad-trusted-proxy",
        "bad-compression",
        "bad-port",
        "not-a-mapping",
        "sources-not-a-list",
        "sink-not-a-mapping",
    ],
)
def test_a_bad_file_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as raised:
        load_checked(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_a_reference_in_a_number_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKBUS_TEST_PORT", "9100")
    config = parse_config({"gateway": {"port": "${HOOKBUS_TEST_PORT}"}, "kafka": {"topic_partitions": "${NONE:-2}"}})
    assert (config.gateway.port, config.kafka.topic_partitions) == (9100, 2)


@pytest.mark.parametrize(
    ("rate_limit", "key", "detail"),
    [
        ({"per_second": 0}, "rate_limit.per_second", "must be greater than 0"),
        ({"per_second": 1, "burst": 0}, "rate_limit.burst", "must be at least 1"),
        ({"burst": 2}, "rate_limit.per_second", "is required"),
        ({"per_second": 1, "bursts": 2}, "rate_limit.bursts", "unknown key"),
    ],
)
def test_a_bad_rate_limit_names_its_key(rate_limit: dict[str, object], key: str, detail: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_source({"api_key": "k", "rate_limit": rate_limit}, name="cars", provider="octamile")
    assert (raised.value.source, raised.value.key) == ("cars", key)
    assert detail in raised.value.detail


def test_the_burst_defaults_to_the_rate_rounded_down_and_at_least_one() -> None:
    def burst_of(per_second: float) -> int:
        source = parse_source({"api_key": "k", "rate_limit": {"per_second": per_second}}, name="c", provider="octamile")
        assert source.rate_limit is not None
        return source.rate_limit.burst

    assert (burst_of(0.5), burst_of(7.9)) == (1, 7)


@dataclass(frozen=True, slots=True)
class Signature:
    header: str
    algorithm: str = "sha256"


@dataclass(frozen=True, slots=True)
class TypedOptions:
    signature: Signature | None = None
    token: Secret | None = None


@pytest.fixture
def typed_provider(monkeypatch: pytest.MonkeyPatch) -> Provider:
    """An installed provider with typed options (octamile's verifier: it checks nothing of them)."""
    spec = dataclasses.replace(
        provider("octamile"),
        name="typed",
        signs=False,
        retries=True,
        option_keys=frozenset({"legacy"}),
        options_type=TypedOptions,
    )
    monkeypatch.setitem(providers(), spec.name, spec)  # type: ignore[index]
    return spec


def test_a_provider_options_type_is_read_into_the_source(
    typed_provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKBUS_TEST_TOKEN", "t0ken")
    raw = {"api_key": "k", "signature": {"header": "X-Sig"}, "token": "${HOOKBUS_TEST_TOKEN}", "legacy": "${NONE:-x}"}
    source = parse_source(raw, name="typed-source", provider=typed_provider.name)

    assert source.provider_options == TypedOptions(signature=Signature(header="X-Sig"), token=Secret(b"t0ken"))
    # The raw options stay as they were, expanded, for the verifiers and mappers that read them.
    assert source.options == {"signature": {"header": "X-Sig"}, "token": "t0ken", "legacy": "x"}
    assert not source.spool


@pytest.mark.parametrize(
    ("options", "key", "detail"),
    [
        ({"signature": {}}, "signature.header", "is required"),
        ({"signature": {"header": "X", "algo": "md5"}}, "signature.algo", "unknown key"),
        ({"signature": "X-Sig"}, "signature", "must be a mapping"),
        ({"tokens": "t"}, "tokens", "unknown key"),
    ],
)
def test_a_bad_provider_option_names_its_source_and_key(
    typed_provider: Provider, options: dict[str, object], key: str, detail: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_source({"api_key": "k", **options}, name="typed-source", provider=typed_provider.name)
    assert (raised.value.source, raised.value.key) == ("typed-source", key)
    assert detail in raised.value.detail


def test_the_schema_of_a_source_has_its_providers_options(typed_provider: Provider) -> None:
    schema = config_schema(normalizer=NormalizerSettings, sink_runner=RunnerSettings, sinks={})
    by_provider = {
        branch["if"]["properties"]["provider"]["const"]: branch["then"]
        for branch in schema["properties"]["sources"]["items"]["allOf"]
    }

    typed = by_provider[typed_provider.name]["properties"]
    assert typed["signature"]["anyOf"][0]["required"] == ["header"]
    assert typed["legacy"] == {}
    assert typed["spool"]["default"] is False
    assert "secrets" in by_provider["october"]["required"]
    assert "signature" not in by_provider["october"]["properties"]


def test_two_sources_cannot_share_a_name() -> None:
    source = parse_source({"api_key": "k"}, name="cars", provider="octamile")
    with pytest.raises(ConfigError, match="used by another source"):
        HookbusConfig(sources=(source, source))
