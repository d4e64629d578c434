"""Loading and checking the configuration file.

The file is YAML. Every string may hold ``${VAR}`` (the environment; ``${VAR:-default}``
gives a default) or ``${file:/path}`` (a file's content without its trailing newline, for
secrets mounted by an orchestrator). Everything is checked here, at startup: a bad file
raises :class:`~hookbus.errors.ConfigError`, whose one-line message names the file, the
source and the key. The result is frozen dataclasses that the services build from.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from hookbus.errors import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_TOLERANCE_SECONDS = 300.0
CONFIG_ENV = "HOOKBUS_CONFIG"
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret value. Its repr never shows it, so it cannot leak through a log or a traceback."""

    value: bytes

    @classmethod
    def of(cls, text: str) -> Secret:
        return cls(text.encode("utf-8"))

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: ``per_second`` requests on average, bursts of up to ``burst``."""

    per_second: float
    burst: int


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One webhook source: the path segment it is posted to and how it is authenticated."""

    name: str
    provider: str
    secrets: tuple[Secret, ...] = ()
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS
    api_key: Secret | None = None
    ip_allowlist: tuple[IPNetwork, ...] = ()
    methods: tuple[str, ...] = ("POST",)
    required_headers: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    spool: bool = False
    rate_limit: RateLimit | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KafkaConfig:
    bootstrap_servers: str = "localhost:9092"
    client_id: str = "hookbus"
    raw_topic: str = "hookbus.raw"
    events_topic: str = "hookbus.events"
    dlq_topic: str = "hookbus.dlq"
    topic_partitions: int = 6
    replication_factor: int = 1
    # zstd, not lz4: aiokafka's lz4 frames fail the block checksum of Go clients (sarama,
    # franz-go), so any non-Java consumer of our topics could not read them.
    compression_type: str = "zstd"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    host: str = "0.0.0.0"  # noqa: S104 - a gateway listens for the outside world by design
    port: int = 8080
    ack_timeout_seconds: float = 4.0
    shutdown_timeout_seconds: float = 10.0
    spool_dir: str = "./var/spool"
    spool_max_bytes: int = 1024 * 1024 * 1024
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    read_timeout_seconds: float = 30.0
    keepalive_timeout_seconds: float = 75.0
    """Idle keep-alive connections close after this long; also bounds how long a request's
    line and headers may take to arrive (a slow-loris client is cut off)."""


@dataclass(frozen=True, slots=True)
class HookbusConfig:
    """The whole file. ``normalizer`` and ``sinks`` stay raw mappings here: each service
    checks its own section when it is built, with the same :class:`ConfigError`."""

    path: str
    kafka: KafkaConfig
    gateway: GatewayConfig
    trusted_proxies: tuple[IPNetwork, ...]
    sources: tuple[SourceConfig, ...]
    normalizer: Mapping[str, Any]
    sinks: Mapping[str, Mapping[str, Any]]

    def source(self, name: str) -> SourceConfig | None:
        for source in self.sources:
            if source.name == name:
                return source
        return None


# --- reading values ---------------------------------------------------------------------


def expand_references(text: str, *, key: str | None = None) -> str:
    """Replace ``${VAR}``, ``${VAR:-default}`` and ``${file:/path}`` in ``text``."""

    def replace(match: re.Match[str]) -> str:
        reference = match.group(1)
        if reference.startswith("file:"):
            path = reference[len("file:") :]
            try:
                return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(f"cannot read {path}: {exc.strerror}", key=key) from exc
        name, has_default, default = reference.partition(":-")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"${{{reference}}} is not a variable reference", key=key)
        value = os.environ.get(name)
        if value is None:
            if has_default:
                return default
            raise ConfigError(f"environment variable {name} is not set", key=key)
        return value

    return _REFERENCE.sub(replace, text)


def _expand(value: Any, key: str | None) -> Any:
    if isinstance(value, str):
        return expand_references(value, key=key)
    if isinstance(value, list):
        return [_expand(item, key) for item in value]
    if isinstance(value, dict):
        return {name: _expand(item, key if key is not None else str(name)) for name, item in value.items()}
    return value


class ConfigSection:
    """Reads one mapping of the file, so every error names its key and nothing is left unread."""

    def __init__(self, raw: Any, *, what: str) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{what} must be a mapping, not {type(raw).__name__}")
        self._raw: Mapping[str, Any] = raw
        self._read: set[str] = set()

    def has(self, key: str) -> bool:
        return key in self._raw

    def get(self, key: str, convert: Callable[[Any, str], _T], default: _T) -> _T:
        self._read.add(key)
        if key not in self._raw or self._raw[key] is None:
            return default
        return convert(_expand(self._raw[key], key), key)

    def require(self, key: str, convert: Callable[[Any, str], _T]) -> _T:
        self._read.add(key)
        if key not in self._raw or self._raw[key] is None:
            raise ConfigError("is required", key=key)
        return convert(_expand(self._raw[key], key), key)

    def raw(self, key: str) -> Any:
        """The value as written, references not yet expanded: for a nested section that expands its own leaves."""
        self._read.add(key)
        return self._raw.get(key)

    def expanded(self, key: str) -> Any:
        self._read.add(key)
        return _expand(self._raw.get(key), key)

    def check_keys(self, allowed: frozenset[str]) -> None:
        """Reject unknown keys first, so a misspelt key is named as such and not as a missing one."""
        unknown = sorted(set(self._raw) - allowed)
        if unknown:
            raise ConfigError("unknown key", key=str(unknown[0]))

    def reject_unknown(self, *, also_allowed: frozenset[str] = frozenset()) -> None:
        unknown = sorted(set(self._raw) - self._read - also_allowed)
        if unknown:
            raise ConfigError("unknown key", key=str(unknown[0]))


def as_str(value: Any, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"must be a string, not {type(value).__name__}", key=key)
    return str(value)


def as_int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError("must be a whole number", key=key)
    try:
        number = int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"must be a whole number, not {value!r}", key=key) from exc
    if number < 0:
        raise ConfigError("must not be negative", key=key)
    return number


def as_float(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError("must be a number", key=key)
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"must be a number, not {value!r}", key=key) from exc
    if number < 0 or math.isnan(number):
        raise ConfigError("must be a non-negative number", key=key)
    return number


def as_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "1", "0"}:
        return value.lower() in {"true", "yes", "1"}
    raise ConfigError(f"must be true or false, not {value!r}", key=key)


def as_str_list(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"must be a list, not {type(value).__name__}", key=key)
    return tuple(as_str(item, key) for item in value)


def as_networks(value: Any, key: str) -> tuple[IPNetwork, ...]:
    networks = []
    for item in as_str_list(value, key):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(f"{item!r} is not an IP address or CIDR", key=key) from exc
    return tuple(networks)


def as_secret(value: Any, key: str) -> Secret:
    text = as_str(value, key)
    if not text:
        raise ConfigError("is empty", key=key)
    return Secret.of(text)


def as_secrets(value: Any, key: str) -> tuple[Secret, ...]:
    # An entry that expands to "" is left out, so `${KEY_OLD:-}` can stand in the list
    # between rotations; a list with no secret at all is caught by the caller.
    return tuple(Secret.of(text) for text in as_str_list(value, key) if text)


def as_methods(value: Any, key: str) -> tuple[str, ...]:
    methods = tuple(method.upper() for method in as_str_list(value, key))
    if not methods:
        raise ConfigError("must name at least one method", key=key)
    for method in methods:
        if not re.fullmatch(r"[A-Z]+", method):
            raise ConfigError(f"{method!r} is not an HTTP method", key=key)
    return methods


def as_str_mapping(value: Any, key: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping, not {type(value).__name__}", key=key)
    return {as_str(name, key): as_str(item, key) for name, item in value.items()}


def as_mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"must be a mapping, not {type(value).__name__}", key=key)
    return dict(value)


def as_compression(value: Any, key: str) -> str:
    codec = as_str(value, key).lower()
    if codec not in {"none", "gzip", "snappy", "lz4", "zstd"}:
        raise ConfigError(f"{codec!r} is not one of none, gzip, snappy, lz4, zstd", key=key)
    return codec


def as_rate_limit(value: Any, key: str) -> RateLimit:
    section = ConfigSection(value, what=key)
    try:
        per_second = section.require("per_second", as_float)
        burst = section.get("burst", as_int, max(1, int(per_second)))
        section.reject_unknown()
    except ConfigError as exc:
        raise ConfigError(exc.detail, key=f"{key}.{exc.key}") from exc
    if per_second <= 0 or burst < 1:
        raise ConfigError("per_second must be positive and burst at least 1", key=key)
    return RateLimit(per_second=per_second, burst=burst)


# --- sources ----------------------------------------------------------------------------


_SOURCE_KEYS = frozenset(
    {
        "name",
        "provider",
        "secrets",
        "tolerance_seconds",
        "api_key",
        "ip_allowlist",
        "methods",
        "required_headers",
        "max_body_bytes",
        "spool",
        "rate_limit",
    }
)


def parse_source(raw: Any, *, name: str | None = None, provider: str | None = None) -> SourceConfig:
    """One source from its mapping. ``name`` and ``provider`` may be given from outside, as
    the signed-request vectors do; otherwise they are read from the mapping."""
    section = ConfigSection(raw, what="a source")
    if name is None:
        name = section.require("name", as_str)
    else:
        section.get("name", as_str, name)
    try:
        return _parse_source_body(section, name, provider)
    except ConfigError as exc:
        raise exc.located(source=name) from exc


def _parse_source_body(section: ConfigSection, name: str, provider: str | None) -> SourceConfig:
    if not _SOURCE_NAME.fullmatch(name):
        raise ConfigError("must be lowercase letters, digits, '-' or '_' (it is a URL path segment)", key="name")
    if provider is None:
        provider = section.require("provider", as_str)
    else:
        section.get("provider", as_str, provider)
    # Imported here: providers build on this module, so the registry is read only once the
    # configuration is, never while this module is first imported.
    from hookbus.provider import provider as find_provider

    spec = find_provider(provider)
    section.check_keys(_SOURCE_KEYS | spec.option_keys)

    secrets: tuple[Secret, ...] = section.get("secrets", as_secrets, ())
    if spec.signs and not secrets:
        raise ConfigError(f"{provider} signs its requests: give at least one secret", key="secrets")
    api_key = section.get("api_key", as_secret, None)
    ip_allowlist: tuple[IPNetwork, ...] = section.get("ip_allowlist", as_networks, ())
    options = {key: section.expanded(key) for key in spec.option_keys if section.has(key)}
    source = SourceConfig(
        name=name,
        provider=provider,
        secrets=secrets,
        tolerance_seconds=section.get("tolerance_seconds", as_float, DEFAULT_TOLERANCE_SECONDS),
        api_key=api_key,
        ip_allowlist=ip_allowlist,
        methods=section.get("methods", as_methods, ("POST",)),
        required_headers=section.get("required_headers", as_str_mapping, {}),
        max_body_bytes=section.get("max_body_bytes", as_int, DEFAULT_MAX_BODY_BYTES),
        spool=section.get("spool", as_bool, not spec.retries),
        rate_limit=section.get("rate_limit", as_rate_limit, None),
        options=options,
    )
    section.reject_unknown()
    if source.max_body_bytes < 1:
        raise ConfigError("must be at least 1", key="max_body_bytes")
    # A source open to anyone must be said so explicitly (ip_allowlist: [0.0.0.0/0, ::/0]),
    # never reached by forgetting a key.
    if not (api_key or ip_allowlist or spec.verifier.authenticates(source)):
        raise ConfigError(
            "the source would accept anyone: configure secrets, api_key or ip_allowlist",
            key="api_key",
        )
    return source


# --- the whole file ---------------------------------------------------------------------

_TOP_LEVEL = frozenset({"kafka", "gateway", "trusted_proxies", "sources", "normalizer", "sinks"})


def parse_config(raw: Any, *, path: str = "<config>") -> HookbusConfig:
    """The whole configuration from already-parsed YAML."""
    try:
        return _parse_config(raw, path)
    except ConfigError as exc:
        raise exc.located(file=path) from exc


def _parse_config(raw: Any, path: str) -> HookbusConfig:
    top = ConfigSection(raw if raw is not None else {}, what="the file")
    kafka = _parse_kafka(top.raw("kafka") or {})
    gateway = _parse_gateway(top.raw("gateway") or {})
    trusted_proxies: tuple[IPNetwork, ...] = top.get("trusted_proxies", as_networks, ())
    raw_sources = top.raw("sources") or []
    if not isinstance(raw_sources, list):
        raise ConfigError("must be a list of sources", key="sources")
    sources = tuple(parse_source(item) for item in raw_sources)
    seen: set[str] = set()
    for source in sources:
        if source.name in seen:
            raise ConfigError("the name is used by another source too", source=source.name, key="name")
        seen.add(source.name)
    # The normalizer expands its own section's leaves (normalizer/settings.py), once.
    normalizer = as_mapping(top.raw("normalizer") or {}, "normalizer")
    sinks_raw: dict[str, Any] = top.get("sinks", as_mapping, {})
    sinks = {str(name): as_mapping(value, f"sinks.{name}") for name, value in sinks_raw.items()}
    top.reject_unknown()
    return HookbusConfig(
        path=path,
        kafka=kafka,
        gateway=gateway,
        trusted_proxies=trusted_proxies,
        sources=sources,
        normalizer=normalizer,
        sinks=sinks,
    )


def parse_section(prefix: str, parse: Callable[[ConfigSection], _T], raw: Any) -> _T:
    """Parse a nested mapping of the file; errors name their key as ``<prefix>.<key>``."""
    try:
        section = ConfigSection(raw, what=prefix)
        result = parse(section)
        section.reject_unknown()
    except ConfigError as exc:
        raise ConfigError(exc.detail, key=f"{prefix}.{exc.key}" if exc.key else prefix) from exc
    return result


def _parse_kafka(raw: Any) -> KafkaConfig:
    default = KafkaConfig()

    def parse(section: ConfigSection) -> KafkaConfig:
        return KafkaConfig(
            bootstrap_servers=section.get("bootstrap_servers", as_str, default.bootstrap_servers),
            client_id=section.get("client_id", as_str, default.client_id),
            raw_topic=section.get("raw_topic", as_str, default.raw_topic),
            events_topic=section.get("events_topic", as_str, default.events_topic),
            dlq_topic=section.get("dlq_topic", as_str, default.dlq_topic),
            topic_partitions=section.get("topic_partitions", as_int, default.topic_partitions),
            replication_factor=section.get("replication_factor", as_int, default.replication_factor),
            compression_type=section.get("compression_type", as_compression, default.compression_type),
            security_protocol=section.get("security_protocol", as_str, default.security_protocol),
            sasl_mechanism=section.get("sasl_mechanism", as_str, None),
            sasl_username=section.get("sasl_username", as_str, None),
            sasl_password=section.get("sasl_password", as_secret, None),
        )

    return parse_section("kafka", parse, raw)


def _parse_gateway(raw: Any) -> GatewayConfig:
    default = GatewayConfig()

    def parse(section: ConfigSection) -> GatewayConfig:
        return GatewayConfig(
            host=section.get("host", as_str, default.host),
            port=section.get("port", as_int, default.port),
            ack_timeout_seconds=section.get("ack_timeout_seconds", as_float, default.ack_timeout_seconds),
            shutdown_timeout_seconds=section.get(
                "shutdown_timeout_seconds", as_float, default.shutdown_timeout_seconds
            ),
            spool_dir=section.get("spool_dir", as_str, default.spool_dir),
            spool_max_bytes=section.get("spool_max_bytes", as_int, default.spool_max_bytes),
            max_header_bytes=section.get("max_header_bytes", as_int, default.max_header_bytes),
            max_headers=section.get("max_headers", as_int, default.max_headers),
            read_timeout_seconds=section.get("read_timeout_seconds", as_float, default.read_timeout_seconds),
            keepalive_timeout_seconds=section.get(
                "keepalive_timeout_seconds", as_float, default.keepalive_timeout_seconds
            ),
        )

    return parse_section("gateway", parse, raw)


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
