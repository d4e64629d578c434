"""The provider registry: the one place that names every provider hookbus speaks.

A provider is three files found by its name: the verifier ``ingest/verifiers/<name>.py``,
the mapper ``normalizer/mappers/<name>.py`` and the schema of its data
``schemas/data/<name>.json``. Adding a provider means writing those three and one line in
:data:`PROVIDERS` below; nothing else in the core changes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What the core must know of a provider before loading any of its modules.

    ``signs``: the provider signs its requests, so a source needs at least one secret.
    ``retries``: the provider redelivers what we fail to acknowledge. For those that do not,
    the gateway spools to local disk by default when Kafka is slow to acknowledge.
    ``option_keys``: provider-specific keys a source of this provider may carry.
    ``options_type``: a frozen dataclass whose fields are more such keys, read by
    :func:`hookbus.settings.parse_settings` into :attr:`SourceConfig.provider_options
    <hookbus.config.SourceConfig.provider_options>` (errors keyed ``<key>.<field>``) and
    described in the schema of the file; the raw values stay in ``SourceConfig.options``.
    """

    name: str
    signs: bool
    retries: bool
    option_keys: frozenset[str] = frozenset()
    options_type: type[object] | None = None


PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec("october", signs=True, retries=True),
        ProviderSpec("officernd", signs=True, retries=False),
        ProviderSpec("offerte_adviseur", signs=True, retries=False),
        ProviderSpec("octamile", signs=False, retries=False),
        ProviderSpec("generic", signs=False, retries=False, option_keys=frozenset({"signature", "mapping"})),
    )
}
