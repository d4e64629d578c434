"""JSON Schemas (draft 2020-12): the canonical event and the data of each provider.

``cloudevent.json`` describes the whole event and, in ``$defs/data``, the shape of data
common to every provider; ``data/<provider>.json`` refines that shape for one provider and
is what an event's ``dataschema`` names. A provider's data schema is the file its
:class:`~hookbus.provider.Provider` names (hookbus's own are in ``data/``; a third-party
provider ships its own), so the providers are known here through the registry only.
Each schema's ``$id`` carries its version
(``https://hookbus.dev/schemas/data/officernd/v1.json``): the files are the contract other
teams code against, loaded from the package, never fetched over the network.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

import jsonschema_rs
import orjson
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from hookbus.errors import ConfigError
from hookbus.provider import provider, providers

CLOUDEVENT_SCHEMA_ID: Final = "https://hookbus.dev/schemas/cloudevent/v1.json"


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(resources.files(__name__).joinpath(name).read_bytes())
    return document


@functools.cache
def cloudevent_schema() -> Mapping[str, Any]:
    """The canonical event's schema (shared; do not modify it)."""
    return _load("cloudevent.json")


@functools.cache
def data_schema(name: str) -> Mapping[str, Any]:
    """The schema of ``data`` for the provider ``name`` (shared; do not modify it).

    :class:`~hookbus.errors.ConfigError` when its ``$id`` is not what an event's
    ``dataschema`` may carry, or is another installed provider's: a third-party package's
    mistake is refused at startup, not found in every event's dead letter.
    """
    document: dict[str, Any] = orjson.loads(provider(name).data_schema.read_bytes())
    schema_id = document.get("$id")
    pattern = cloudevent_schema()["properties"]["dataschema"]["pattern"]
    if not isinstance(schema_id, str) or not re.fullmatch(pattern, schema_id):
        raise ConfigError(f"the data schema of provider {name!r} has no versioned https $id ({pattern})")
    for other in providers():
        if other != name and _declared_id(other) == schema_id:
            raise ConfigError(f"providers {name!r} and {other!r} declare the same data schema $id {schema_id}")
    return document


def _declared_id(name: str) -> Any:
    return orjson.loads(provider(name).data_schema.read_bytes()).get("$id")


def data_schema_id(name: str) -> str:
    """The versioned URI an event's ``dataschema`` carries for the provider ``name``."""
    schema_id: str = data_schema(name)["$id"]
    return schema_id


@functools.cache
def registry() -> Registry[Any]:
    """Every hookbus schema by its ``$id``, so ``$ref`` between them resolves offline."""
    documents = [cloudevent_schema(), *(data_schema(name) for name in providers())]
    return Registry().with_resources(
        (document["$id"], Resource.from_contents(document, default_specification=DRAFT202012)) for document in documents
    )


def validator_for(schema: Mapping[str, Any]) -> Draft202012Validator:
    """A validator resolving references through :func:`registry`. Build it once and reuse
    it: building is the expensive part. Formats are described, not asserted.

    This is the reference validator: its verdict and its error messages are the contract.
    """
    return Draft202012Validator(schema, registry=registry())


def _refuse_retrieval(uri: str) -> Any:
    raise LookupError(f"{uri} is not a hookbus schema; schemas are never fetched")


@functools.cache
def _compiled_registry() -> jsonschema_rs.Registry:
    documents = [cloudevent_schema(), *(data_schema(name) for name in providers())]
    return jsonschema_rs.Registry(
        [(document["$id"], dict(document)) for document in documents], retriever=_refuse_retrieval
    )


def compiled_validator_for(schema: Mapping[str, Any]) -> jsonschema_rs.Validator:
    """The same schema compiled by jsonschema-rs, for the hot path's valid-or-not question.

    It resolves references from the package only (an unknown ``$ref`` fails the build, it is
    never fetched) and, like :func:`validator_for`, does not assert formats. Its "invalid"
    is only a hint: ask the reference validator why (and whether it agrees).
    """
    return jsonschema_rs.Draft202012Validator(
        dict(schema), registry=_compiled_registry(), retriever=_refuse_retrieval, validate_formats=False
    )
