"""hookbus: take webhooks in safely, keep every accepted one, hand them on as CloudEvents.

This package holds what the services share: configuration, Kafka setup, logging, the CLI
and the local Kafka/PostgreSQL launchers. The services themselves are the top-level
packages ``ingest``, ``normalizer`` and ``sinks``; ``schemas`` holds the JSON Schemas.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hookbus")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
