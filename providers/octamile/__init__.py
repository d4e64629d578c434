"""Octamile (vehicle insurance): No signature: the source's API key authenticates. Approvals
carry an inline certificate. No retries.

Everything hookbus knows of this provider is in this folder; its data schema is
``schemas/data/octamile.json``.
"""

from __future__ import annotations

from importlib import resources

from hookbus.provider import Provider
from hookbus.rawkey import member_key

from .examples import EXAMPLES
from .mapper import MAPPER, RAW_KEY_MEMBERS, partition_key
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
    raw_key=member_key(RAW_KEY_MEMBERS, partition_key),
)
