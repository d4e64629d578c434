"""hookbus: take webhooks in safely, keep every accepted one, hand them on as CloudEvents.

This package is the core every stage builds on, and the public API of plugins. What a
provider or a sink package may use is exported here (``__all__``) and by the contract
modules, each with its own ``__all__``:

- :mod:`hookbus.provider`: the provider contract and registry; :mod:`hookbus.verifying`
  and :mod:`hookbus.mapping`: the helpers verifiers and mappers share;
  :mod:`hookbus.example_data`: ids, times and signatures for a provider's examples;
- :mod:`hookbus.sink`: the sink contract; :mod:`hookbus.sink_tables`: what table sinks share;
- :mod:`hookbus.settings`: the configuration reader a plugin's settings dataclass is read by;
- :mod:`hookbus.tracecontext`: the W3C trace context an event carries, for sinks that send it on.

Every other module is internal and may change in any release. The stages (``ingest``,
``normalizer``, ``sinks``), hookbus's own providers (``providers``) and the tools that span
stages (``tools``) are top-level packages of the same distribution; no plugin imports them.
"""

from importlib.metadata import PackageNotFoundError, version

from hookbus.cloudevent import CloudEvent, CloudEventError, Mode
from hookbus.config import KafkaConfig, SourceConfig
from hookbus.errors import ConfigError, HookbusError, KafkaUnavailableError
from hookbus.mapping import Mapped, Mapper, MappingError, SourceMapper
from hookbus.provider import Credentials, Examples, Provider, SignedRequest
from hookbus.rawevent import AuthMethod, RawEvent
from hookbus.request import Accept, RawRequest, Reason, Reject, Verdict
from hookbus.settings import Secret
from hookbus.sink import BatchResult, Rejection, Sink, SinkContext, SinkType
from hookbus.verifying import Verifier

__all__ = [
    "Accept",
    "AuthMethod",
    "BatchResult",
    "CloudEvent",
    "CloudEventError",
    "ConfigError",
    "Credentials",
    "Examples",
    "HookbusError",
    "KafkaConfig",
    "KafkaUnavailableError",
    "Mapped",
    "Mapper",
    "MappingError",
    "Mode",
    "Provider",
    "RawEvent",
    "RawRequest",
    "Reason",
    "Reject",
    "Rejection",
    "Secret",
    "SignedRequest",
    "Sink",
    "SinkContext",
    "SinkType",
    "SourceConfig",
    "SourceMapper",
    "Verdict",
    "Verifier",
    "__version__",
]

try:
    __version__ = version("hookbus")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
