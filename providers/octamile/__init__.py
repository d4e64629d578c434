"""Octamile (vehicle insurance): No signature: the source's API key authenticates. Approvals
carry an inline certificate. No retries.

Everything hookbus knows of this provider is in this folder; its data schema is
``schemas/data/octamile.json``.
"""

from __future__ import annotations

from importlib import resources

from hookbus.provider import Provider

from .examples import EXAMPLES
from .mapper import MAPPER
from .verifier import VERIFIER

__all__ = ["PROVIDER"]

PROVIDER = Provider(
    name="octamile",
    title="Octamile (vehicle insurance)",
    verifier=VERIFIER,
    mapper=MAPPER,
    data_schema=resources.files("schemas") / "data" / "octamile.json",
    examples=EXAMPLES,
    golden_cases=resources.files(__name__) / "golden.json",
    signs=False,
    retries=False,
)
