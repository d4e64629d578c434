"""Loading and checking the configuration file.

The file is YAML. Every string may hold ``${VAR}`` (the environment; ``${VAR:-default}``
gives a default) or ``${file:/path}`` (a file's content without its trailing newline, for
secrets mounted by an orchestrator). Everything is checked here, at startup: a bad file
raises :class:`~hookbus.errors.ConfigError`, whose one-line message names the file, the
source and the key. The result is frozen dataclasses that the services build from, each
section read by the one reader of :mod:`hookbus.settings`; :func:`config_schema` describes
the file as JSON Schema.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hookbus.errors import ConfigError
from hookbus.settings import (
    DEFAULT_FROM,
    EXCLUSIVE_MINIMUM,
    JSON_SCHEMA_DIALECT,
    MINIMUM,
    NOT_IN_FILE,
    PARSE,
    READ,
    SCHEMA,
    IPNetwork,
    Secret,
    as_bool,
    as_float,
    as_int,
    as_mapping,
    as_secret,
    as_str,
    as_str_list,
    as_str_mapping,
    expand_leaves,
    expand_references,
    file_fields,
    parse_settings,
    read_field,
    settings_schema,
)

if TYPE_CHECKING:
    from hookbus.provider import Provider

# The stages import Secret and the converters from here, as they did before the reader had
# a module of its own.
__all__ = [
    "COMPRESSION_TYPES",
    "CONFIG_ENV",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_TOLERANCE_SECONDS",
    "DeliveryReportsConfig",
    "GatewayConfig",
    "HookbusConfig",
    "IPNetwork",
    "KafkaConfig",
    "OpsConfig",
    "RateLimit",
    "RequestLogConfig",
    "Secret",
    "SourceConfig",
    "as_bool",
    "as_compression",
    "as_float",
    "as_int",
    "as_mapping",
    "as_methods",
    "as_provider",
    "as_secret",
    "as_str",
    "as_str_list",
    "as_str_mapping",
    "config_schema",
    "expand_references",
    "load_config",
    "parse_config",
    "parse_source",
    "provider_option_keys",
]

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_TOLERANCE_SECONDS = 300.0
CONFIG_ENV = "HOOKBUS_CONFIG"
COMPRESSION_TYPES = ("none", "gzip", "snappy", "lz4", "zstd")
# One broker's worth; a cluster needs 3 (docs/configuration.md, "Production topic settings").
_DEVELOPMENT_REPLICATION_FACTOR = 1
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_HTTP_METHOD = re.compile(r"[A-Z]+")


def as_methods(value: Any, key: str) -> tuple[str, ...]:
    methods = tuple(method.upper() for method in as_str_list(value, key))
    if not methods:
        raise ConfigError("must name at least one method", key=key)
    for method in methods:
        if not _HTTP_METHOD.fullmatch(method):
            raise ConfigError(f"{method!r} is not an HTTP method", key=key)
    return methods


def as_compression(value: Any, key: str) -> str:
    codec = as_str(value, key).lower()
    if codec not in COMPRESSION_TYPES:
        raise ConfigError(f"{codec!r} is not one of {', '.join(COMPRESSION_TYPES)}", key=key)
    return codec


def _installed() -> Mapping[str, Provider]:
    # Imported here: providers build on this module, so the registry is read once the
    # configuration is, never while this module is first imported.
    from hookbus.provider import providers

    return providers()


def as_provider(value: Any, key: str) -> str:
    provider = as_str(value, key)
    if provider not in _installed():
        raise ConfigError(f"unknown provider {provider!r}; known: {', '.join(_installed())}", key=key)
    return provider


def _burst_of(values: Mapping[str, Any]) -> int:
    return max(1, int(values["per_second"]))


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``per_second`` requests on average, bursts of up to ``burst``."""

    per_second: float = field(metadata={EXCLUSIVE_MINIMUM: 0})
    burst: int = field(metadata={MINIMUM: 1, DEFAULT_FROM: _burst_of})
    """The bucket's size; by default ``per_second`` rounded down, at least 1."""


def _spools_by_default(values: Mapping[str, Any]) -> bool:
    return not _installed()[values["provider"]].retries


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One webhook source: the path segment it is posted to and how it is authenticated."""

    name: str = field(metadata={SCHEMA: {"type": "string", "pattern": _SOURCE_NAME.pattern}})
    """The URL path segment, ``POST /webhooks/<name>``: lowercase letters, digits, '-', '_'; unique."""
    provider: str = field(metadata={PARSE: as_provider})
    secrets: tuple[Secret, ...] = ()
    """Signing secrets, newest first; any one verifies (rotation)."""
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS
    """How far a signed timestamp may be from the gateway's clock, in either direction."""
    api_key: Secret | None = None
    """A key required as the api-key query parameter or the X-API-Key header."""
    ip_allowlist: tuple[IPNetwork, ...] = ()
    """CIDRs allowed to post; empty allows any address."""
    methods: tuple[str, ...] = field(default=("POST",), metadata={PARSE: as_methods})
    required_headers: Mapping[str, str] = field(default_factory=dict)
    """Header name to exact value."""
    max_body_bytes: int = field(default=DEFAULT_MAX_BODY_BYTES, metadata={MINIMUM: 1})
    spool: bool = field(default=False, metadata={DEFAULT_FROM: _spools_by_default})
    """Spool to local disk when Kafka is slow to acknowledge; by default for providers that do not retry."""
    rate_limit: RateLimit | None = None
    options: Mapping[str, Any] = field(default_factory=dict, metadata={NOT_IN_FILE: True})
    """The provider's own keys (``Provider.option_keys``), references expanded, not yet checked."""
    provider_options: object | None = field(default=None, metadata={NOT_IN_FILE: True})
    """The provider's own keys read into its ``Provider.options_type``, when it declares one."""


def _beside_the_raw_topic(suffix: str) -> Callable[[Mapping[str, Any]], str]:
    """The default of a topic named after the raw topic: ``<prefix>.raw`` gives ``<prefix>.<suffix>``."""

    def name(values: Mapping[str, Any]) -> str:
        return str(values.get("raw_topic", "hookbus.raw")).removesuffix(".raw") + "." + suffix

    return name


def _min_insync_of(values: Mapping[str, Any]) -> int:
    return max(1, int(values.get("replication_factor", _DEVELOPMENT_REPLICATION_FACTOR)) - 1)


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    """The Kafka cluster and the topics every service uses."""

    bootstrap_servers: str = "localhost:9092"
    client_id: str = "hookbus"
    raw_topic: str = "hookbus.raw"
    """Accepted requests, raw bytes."""
    events_topic: str = "hookbus.events"
    """Canonical CloudEvents."""
    dlq_topic: str = "hookbus.dlq"
    """What the normalizer could not map, with the reason."""
    requests_topic: str = field(default="hookbus.requests", metadata={DEFAULT_FROM: _beside_the_raw_topic("requests")})
    """The request log (:mod:`hookbus.requestlog`); by default beside the raw topic: ``<prefix>.requests``."""
    deliveries_topic: str = field(
        default="hookbus.deliveries", metadata={DEFAULT_FROM: _beside_the_raw_topic("deliveries")}
    )
    """The sinks' delivery reports (:mod:`hookbus.delivery`); by default ``<prefix>.deliveries``."""
    topic_partitions: int = 6
    """For the topics hookbus creates."""
    replication_factor: int = field(default=_DEVELOPMENT_REPLICATION_FACTOR, metadata={MINIMUM: 1})
    """For the topics hookbus creates; 3 in production (1 is refused outside ``development_mode``)."""
    min_insync_replicas: int = field(default=1, metadata={MINIMUM: 1, DEFAULT_FROM: _min_insync_of})
    """``min.insync.replicas`` of the topics hookbus creates; by default ``replication_factor``
    minus one, at least 1: an ``acks=all`` write is then on two replicas or refused, and one
    broker may be down."""
    development_mode: bool = False
    """Start on topics that cannot keep a 2xx durable (one replica, a min ISR of 1, too few
    partitions, too small a ``max.message.bytes``), warning instead of refusing: one broker."""
    request_timeout_seconds: float = field(default=3.0, metadata={EXCLUSIVE_MINIMUM: 0})
    """How long the producers and the admin client wait for a broker's answer; a producer's
    record also fails after this long without a leader. The gateway's producer takes at most
    two thirds of ``gateway.ack_timeout_seconds``, so a frozen broker's request is retried
    elsewhere before the gateway answers."""
    metadata_max_age_seconds: float = field(default=30.0, metadata={EXCLUSIVE_MINIMUM: 0})
    """Every client asks for the cluster's metadata at least this often, leaders moved or not."""
    # zstd, not lz4: aiokafka's lz4 frames fail the block checksum of Go clients (sarama,
    # franz-go), so any non-Java consumer of our topics could not read them.
    compression_type: str = field(
        default="zstd", metadata={PARSE: as_compression, SCHEMA: {"enum": list(COMPRESSION_TYPES)}}
    )
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None

    def __post_init__(self) -> None:
        if self.min_insync_replicas > self.replication_factor:
            raise ConfigError(
                f"must not exceed replication_factor ({self.replication_factor}): no write could succeed",
                key="min_insync_replicas",
            )


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """The HTTP server of ``hookbus gateway``."""

    host: str = "0.0.0.0"  # noqa: S104 - a gateway listens for the outside world by design
    port: int = 8080
    answer_deadline_seconds: float = field(default=2.0, metadata={EXCLUSIVE_MINIMUM: 0})
    """Every webhook request is answered within this long of its headers' arrival: 200 once
    durable, else 503 with Retry-After (or, for a spooling source, the spool)."""
    ack_timeout_seconds: float = field(default=1.5, metadata={EXCLUSIVE_MINIMUM: 0})
    """How long a request waits for Kafka's acknowledgement before 503 (or the spool); below
    ``answer_deadline_seconds``, whose rest is for the spool write and the answer."""
    max_inflight_requests: int = field(default=1024, metadata={MINIMUM: 1})
    """The webhook requests all processes may be handling at once (shared by the
    ``--workers``); past it a request gets 503 ``overloaded`` before its body is read."""
    max_queue_seconds: float = field(default=0.5, metadata={EXCLUSIVE_MINIMUM: 0})
    """A request that waited this long (from its headers' arrival to its handler, plus the
    estimated wait in the kernel before) finds the gateway behind and gets 503 ``overloaded``
    before its body is read; below ``answer_deadline_seconds``."""
    shutdown_timeout_seconds: float = 10.0
    """On SIGTERM, in-flight requests finish and the producer flushes within this time."""
    spool_dir: str = "./var/spool"
    spool_max_bytes: int = 1024 * 1024 * 1024
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    read_timeout_seconds: float = 30.0
    """A client slower than this gets 408."""
    keepalive_timeout_seconds: float = 75.0
    """Idle keep-alive connections close after this long; also bounds how long a request's
    line and headers may take to arrive (a slow-loris client is cut off)."""
    max_inflight_body_bytes: int = field(default=256 * 1024 * 1024, metadata={MINIMUM: 1})
    """The request bodies all requests may be reading or holding at once (shared by the
    ``--workers``); past it a request gets 503 ``overloaded`` before its body is read."""

    def __post_init__(self) -> None:
        # Both must leave time inside the deadline: for the spool write and the answer after
        # the Kafka wait, and for the work itself after the wait in the queue.
        for key in ("ack_timeout_seconds", "max_queue_seconds"):
            if getattr(self, key) >= self.answer_deadline_seconds:
                raise ConfigError(
                    f"must be below answer_deadline_seconds ({self.answer_deadline_seconds:g}): a request must be"
                    " answered within it",
                    key=key,
                )


@dataclass(frozen=True, slots=True)
class RequestLogConfig:
    """The gateway's request log (docs/operations.md, "The request log")."""

    enabled: bool = True
    refused_body_bytes: int = field(default=1024, metadata={MINIMUM: 0})
    """How much of a refused request's body an entry keeps (0: none)."""
    refused_body_bytes_per_second: int = field(default=64 * 1024, metadata={MINIMUM: 0})
    """The body bytes of refused requests each gateway process keeps per second, all sources
    together; past it entries say ``body_omitted: budget``. An unauthenticated sender cannot make
    the log grow faster than this."""
    retention_hours: float = field(default=168.0, metadata={EXCLUSIVE_MINIMUM: 0})
    """``retention.ms`` of the request-log topic when hookbus creates it."""
    retention_bytes_per_partition: int = field(default=1024 * 1024 * 1024, metadata={MINIMUM: 1})
    """``retention.bytes`` of the request-log topic when hookbus creates it (Kafka applies it per partition)."""
    queue_entries: int = field(default=10_000, metadata={MINIMUM: 1})
    """Entries a gateway process holds while Kafka does not take them; past it the oldest are
    dropped (and counted): the log never holds back an answer."""


@dataclass(frozen=True, slots=True)
class DeliveryReportsConfig:
    """The deliveries topic's retention when hookbus creates it (docs/operations.md, "Delivery reports")."""

    retention_hours: float = field(default=168.0, metadata={EXCLUSIVE_MINIMUM: 0})
    retention_bytes_per_partition: int = field(default=1024 * 1024 * 1024, metadata={MINIMUM: 1})


@dataclass(frozen=True, slots=True)
class OpsConfig:
    """The operations HTTP server of the Kafka stages (normalizer, sinks): ``/healthz``, ``/readyz``."""

    host: str = "0.0.0.0"  # noqa: S104 - probed from outside the container by design
    port: int = field(default=0, metadata={MINIMUM: 0})
    """0 serves nothing (the default, so stages sharing a machine in development do not clash)."""


# --- sources ----------------------------------------------------------------------------


def provider_option_keys(spec: Provider) -> frozenset[str]:
    """The keys a source of this provider may carry besides :class:`SourceConfig`'s."""
    if spec.options_type is None:
        return spec.option_keys
    return spec.option_keys | frozenset(file_fields(spec.options_type))


def parse_source(raw: Any, *, name: str | None = None, provider: str | None = None) -> SourceConfig:
    """One source from its mapping. ``name`` and ``provider`` may be given from outside, as
    the signed-request vectors do; otherwise they are read from the mapping."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a source must be a mapping, not {type(raw).__name__}")
    given = {key: value for key, value in (("name", name), ("provider", provider)) if value is not None}
    entries: dict[str, Any] = {**raw, **given}
    source_name: str = read_field(SourceConfig, "name", entries)
    try:
        return _parse_source_body(entries, source_name)
    except ConfigError as exc:
        raise exc.located(source=source_name) from exc


def _parse_source_body(entries: Mapping[str, Any], name: str) -> SourceConfig:
    if not _SOURCE_NAME.fullmatch(name):
        raise ConfigError("must be lowercase letters, digits, '-' or '_' (it is a URL path segment)", key="name")
    spec = _installed()[read_field(SourceConfig, "provider", entries)]
    option_keys = provider_option_keys(spec)
    source = parse_settings(SourceConfig, {key: value for key, value in entries.items() if key not in option_keys})
    given_options = {key: value for key, value in entries.items() if key in option_keys}
    source = dataclasses.replace(
        source,
        options={key: expand_leaves(value, key) for key, value in given_options.items()},
        provider_options=_typed_options(spec, given_options),
    )
    _check_authentication(source, spec)
    return source


def _typed_options(spec: Provider, given_options: Mapping[str, Any]) -> object | None:
    if spec.options_type is None:
        return None
    typed_keys = file_fields(spec.options_type)
    return parse_settings(spec.options_type, {key: value for key, value in given_options.items() if key in typed_keys})


def _check_authentication(source: SourceConfig, spec: Provider) -> None:
    if spec.signs and not source.secrets:
        raise ConfigError(f"{spec.name} signs its requests: give at least one secret", key="secrets")
    # A source open to anyone must be said so explicitly (ip_allowlist: [0.0.0.0/0, ::/0]),
    # never reached by forgetting a key.
    if not (source.api_key or source.ip_allowlist or spec.verifier.authenticates(source)):
        raise ConfigError(
            "the source would accept anyone: configure secrets, api_key or ip_allowlist",
            key="api_key",
        )


def _read_sources(value: Any, key: str) -> tuple[SourceConfig, ...]:
    if not isinstance(value, list):
        raise ConfigError("must be a list of sources", key=key)
    return tuple(parse_source(item) for item in value)


# --- the whole file ---------------------------------------------------------------------


def _as_sink_sections(value: Any, key: str) -> dict[str, Mapping[str, Any]]:
    # Kept as written: each sink reads its section with hookbus.settings.parse_settings when
    # it is built, which expands references at the leaf, once.
    sections = as_mapping(value, key)
    return {str(name): as_mapping(section, f"{key}.{name}") for name, section in sections.items()}


@dataclass(frozen=True, slots=True)
class HookbusConfig:
    """The whole file. ``normalizer``, ``console`` and ``sinks`` stay mappings here: each
    service checks its own section when it is built, with the same :class:`ConfigError`."""

    path: str = field(default="<config>", metadata={NOT_IN_FILE: True})
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    ops: OpsConfig = field(default_factory=OpsConfig)
    request_log: RequestLogConfig = field(default_factory=RequestLogConfig)
    delivery_reports: DeliveryReportsConfig = field(default_factory=DeliveryReportsConfig)
    trusted_proxies: tuple[IPNetwork, ...] = ()
    """CIDRs of the load balancers whose X-Forwarded-For is believed."""
    sources: tuple[SourceConfig, ...] = field(default=(), metadata={READ: _read_sources})
    normalizer: Mapping[str, Any] = field(default_factory=dict)
    console: Mapping[str, Any] = field(default_factory=dict)
    """``hookbus console``'s section, read by the console when it starts (docs/console.md)."""
    sinks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, metadata={READ: _as_sink_sections})

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ConfigError("the name is used by another source too", source=source.name, key="name")
            seen.add(source.name)

    def source(self, name: str) -> SourceConfig | None:
        for source in self.sources:
            if source.name == name:
                return source
        return None


def parse_config(raw: Any, *, path: str = "<config>") -> HookbusConfig:
    """The whole configuration from already-parsed YAML."""
    try:
        if raw is not None and not isinstance(raw, Mapping):
            raise ConfigError(f"the file must be a mapping, not {type(raw).__name__}")
        config = parse_settings(HookbusConfig, raw if raw is not None else {})
    except ConfigError as exc:
        raise exc.located(file=path) from exc
    return dataclasses.replace(config, path=path)


# --- the schema of the file -------------------------------------------------------------


def config_schema(
    *,
    normalizer: type[Any],
    sink_runner: type[Any],
    sinks: Mapping[str, type[Any]],
    console: type[Any] | None = None,
) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the whole file, for editors.

    The stages' sections are given, since the core imports no stage: ``normalizer`` is the
    normalizer's settings class, ``sink_runner`` the runner's settings every ``sinks.<name>``
    section carries, ``sinks`` the settings class of each installed sink type by name, and
    ``console`` the console's settings class (without it the section is any mapping).
    """
    console_schema = {} if console is None else {"console": settings_schema(console)}
    schema = settings_schema(
        HookbusConfig,
        overrides={
            **console_schema,
            "sources": {"type": "array", "items": _discriminated("provider", _source_schemas())},
            "normalizer": settings_schema(normalizer),
            "sinks": {
                "type": "object",
                "additionalProperties": _discriminated("type", _sink_schemas(sink_runner, sinks)),
            },
        },
    )
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "hookbus configuration",
        **schema,
        "description": "The configuration file of every hookbus service (docs/configuration.md).",
    }


def _source_schemas() -> dict[str, dict[str, Any]]:
    schemas = {}
    for spec in _installed().values():
        schema = settings_schema(SourceConfig)
        properties = schema["properties"]
        properties["provider"] = {"const": spec.name}
        properties["spool"]["default"] = not spec.retries
        if spec.options_type is not None:
            options = settings_schema(spec.options_type)
            properties.update(options["properties"])
            schema["required"] += options.get("required", [])
        # Options without a declared type are checked by the provider when it starts.
        properties.update({key: {} for key in sorted(spec.option_keys - properties.keys())})
        if spec.signs:
            schema["required"].append("secrets")
        schemas[spec.name] = schema
    return schemas


def _sink_schemas(runner: type[Any], sinks: Mapping[str, type[Any]]) -> dict[str, dict[str, Any]]:
    schemas = {}
    for name, settings in sinks.items():
        shared, own = settings_schema(runner), settings_schema(settings)
        schema = {
            **own,
            "properties": {**shared["properties"], **own["properties"], "type": {"const": name}},
            "required": [*shared.get("required", []), *own.get("required", [])],
        }
        schemas[name] = schema
    return schemas


def _discriminated(key: str, variants: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """One of ``variants``, chosen by the value of ``key`` (an editor then checks only that one)."""
    return {
        "type": "object",
        "required": [key],
        "properties": {key: {"enum": sorted(variants)}},
        "allOf": [
            {"if": {"properties": {key: {"const": name}}, "required": [key]}, "then": variant}
            for name, variant in variants.items()
        ],
    }


def load_config(path: str | os.PathLike[str] | None = None) -> HookbusConfig:
    """Read and check the file at ``path`` (or ``$HOOKBUS_CONFIG``)."""
    if path is None:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            raise ConfigError(f"no configuration: pass --config or set {CONFIG_ENV}")
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=name) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}".replace("\n", " "), file=name) from exc
    return parse_config(raw, path=name)
