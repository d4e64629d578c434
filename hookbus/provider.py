"""The provider contract, and the registry that finds providers.

A provider is everything hookbus knows of one sender: how its requests are verified (a
:class:`~hookbus.verifying.Verifier`), how its events become canonical data (a
:class:`~hookbus.mapping.Mapper`), the JSON Schema of that data, and realistic signed
examples (:class:`Examples`) for ``hookbus send``, ``hookbus dev``, the tests and the bench.
It is one :class:`Provider` object, exported by one package folder.

Providers are found through the ``hookbus.providers`` entry point group, exactly as sinks
are: an entry point names a :class:`Provider`, or an iterable of them (hookbus's own
providers register as one collection, so adding a built-in provider touches nothing but
its folder). The engines know providers only through :func:`provider` and
:func:`providers`; nothing in the core names one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib.abc import Traversable
from importlib.metadata import entry_points
from typing import Any

from hookbus.errors import ConfigError
from hookbus.mapping import JsonObject, Mapper
from hookbus.rawkey import RawKeyBinder
from hookbus.verifying import Verifier

__all__ = [
    "PROVIDER_GROUP",
    "Credentials",
    "Examples",
    "Provider",
    "SignedRequest",
    "provider",
    "providers",
]

PROVIDER_GROUP = "hookbus.providers"
_PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class Credentials:
    """What an example request is signed or authenticated with."""

    secret: bytes | None = None
    api_key: str | None = None


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The headers and query parameters that go with one example body."""

    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Examples:
    """Realistic requests of one provider, built from its documentation.

    ``event_types`` are every type the provider documents, as it names them; the first is
    the one sent by default. ``body(event_type, now)`` is a fresh event of that type (new
    ids, so every send is a distinct event). ``sign(body, event_type, credentials, now)``
    is what the provider sends with those bytes at Unix time ``now`` (the type too, for a
    provider that names it in a header). It raises :class:`~hookbus.errors.ConfigError`
    when ``credentials`` lack what it needs, whatever the body: ``hookbus send`` checks the
    credentials by signing an empty object before it sends anything.

    ``source`` is the configuration of an example source accepting those requests, as the
    mapping a configuration file holds, without ``name``. ``${SECRET}`` and ``${API_KEY}``
    stand for credentials the caller generates (``hookbus dev`` does, once, and keeps them).
    """

    event_types: tuple[str, ...]
    body: Callable[[str, datetime], JsonObject]
    sign: Callable[[bytes, str, Credentials, float], SignedRequest]
    source: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Provider:
    """One provider, as its package exports it (``PROVIDER = Provider(...)``).

    ``signs``: every source of this provider needs at least one secret. ``retries``: the
    provider redelivers what we fail to acknowledge; for those that do not, the gateway
    spools to local disk by default. ``option_keys``: source keys of this provider's own
    (read by its verifier and mapper, which check them at startup). ``options_type``: a
    frozen dataclass whose fields are more such keys, read by the configuration reader into
    :attr:`SourceConfig.provider_options <hookbus.config.SourceConfig.provider_options>`
    (errors keyed ``<key>.<field>``) and described in the file's JSON Schema. ``data_schema`` is the
    JSON Schema of the ``data`` its events carry, the contract consumers read.
    ``golden_cases``: raw requests with the exact CloudEvent each must become; the golden
    tests run them for every registered provider. ``raw_key`` (optional): reads the entity
    of a verified request at the gateway, the one its mapper keys the event by, so the raw
    topic is keyed by entity rather than by source (:mod:`hookbus.rawkey`); without it, or
    when it returns ``None``, the raw record is keyed by the source.
    """

    name: str
    title: str
    verifier: Verifier
    mapper: Mapper
    data_schema: Traversable
    examples: Examples
    golden_cases: Traversable
    signs: bool
    retries: bool
    option_keys: frozenset[str] = frozenset()
    options_type: type[object] | None = None
    raw_key: RawKeyBinder | None = None

    def __post_init__(self) -> None:
        if not _PROVIDER_NAME.fullmatch(self.name):
            raise ValueError(f"provider name {self.name!r} must be lowercase letters, digits and '_'")


@functools.cache
def providers() -> Mapping[str, Provider]:
    """Every installed provider by name, built-in and third-party alike."""
    found: dict[str, Provider] = {}
    for entry in entry_points(group=PROVIDER_GROUP):
        for item in _as_providers(entry.load(), entry.value):
            if item.name in found:
                raise ConfigError(f"two installed packages register the provider {item.name!r} ({entry.value})")
            found[item.name] = item
    return dict(sorted(found.items()))


def _as_providers(loaded: object, where: str) -> Iterable[Provider]:
    if isinstance(loaded, Provider):
        return (loaded,)
    if isinstance(loaded, Iterable) and not isinstance(loaded, str | bytes):
        items = tuple(loaded)
        if all(isinstance(item, Provider) for item in items):
            return items
    raise TypeError(f"entry point {where} is neither a hookbus Provider nor a collection of them")


def provider(name: str) -> Provider:
    """The installed provider ``name``; :class:`~hookbus.errors.ConfigError` naming the known ones otherwise."""
    found = providers().get(name)
    if found is None:
        raise ConfigError(f"unknown provider {name!r}; known: {', '.join(providers())}", key="provider")
    return found
