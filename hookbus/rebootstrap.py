"""Kafka clients that go back to ``bootstrap_servers`` when every broker they know is gone.

Once aiokafka (0.14) has cluster metadata, ``AIOKafkaClient._metadata_update`` asks only the
brokers of the last answer (``cluster.brokers()``) and never the bootstrap servers again: after
a restart sequence that replaced or moved those brokers, a client logs ``Unable to update
metadata from [1]`` until its process is restarted, while the brokers in ``bootstrap_servers``
are up and leading. The Java client solves this with ``metadata.recovery.strategy=rebootstrap``
(KIP-899): when no known broker answers, it resolves the bootstrap servers again. This module
gives aiokafka clients the same recovery.

AIOKafkaProducer and AIOKafkaConsumer build their client in ``__init__`` and hand that very
object to their sender, fetcher and coordinator, so replacing the object would leave them on the
old one. Instead the instance's class is switched to a subclass that adds no state and overrides
one method: every reference stays valid, and the client's own ``bootstrap`` (with its connection
settings, SASL and TLS) is what finds the cluster again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.client import AIOKafkaClient
from aiokafka.cluster import ClusterMetadata
from aiokafka.errors import KafkaConnectionError

__all__ = ["RebootstrappingClient", "rebootstrapping"]

_log = logging.getLogger(__name__)


class RebootstrappingClient(AIOKafkaClient):  # type: ignore[misc]  # aiokafka ships no type hints
    """An AIOKafkaClient whose failed metadata update falls back to the bootstrap servers."""

    async def _metadata_update(self, cluster_metadata: ClusterMetadata, topics: Iterable[str]) -> bool:
        if await super()._metadata_update(cluster_metadata, topics):
            return True
        _log.warning("no known Kafka broker answered; bootstrapping again from %s", self._bootstrap_servers)
        try:
            # Connects to the bootstrap servers (names resolved anew) and replaces the broker list.
            await self.bootstrap()
        except KafkaConnectionError:
            return False
        # Ask the brokers just learnt for the topics this client follows.
        updated: bool = await super()._metadata_update(cluster_metadata, topics)
        return updated


def rebootstrapping(client: AIOKafkaClient) -> None:
    """Make ``client`` (made by aiokafka, not started or started) re-bootstrap on stale metadata.

    Refuses any other class than aiokafka's own: a future aiokafka that builds another client
    must be looked at again, not silently patched.
    """
    if type(client) is not AIOKafkaClient:
        raise TypeError(f"expected aiokafka's AIOKafkaClient, got {type(client).__qualname__}")
    client.__class__ = RebootstrappingClient
