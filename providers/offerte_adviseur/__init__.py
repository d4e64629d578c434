"""Offerte Adviseur (lead marketplace): ``x-offerte-adviseur-signature`` is the hex HMAC-SHA256
of the raw body; no timestamp. No retries.

Everything hookbus knows of this provider is in this folder; its data schema is
``schemas/data/offerte_adviseur.json``.
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
    name="offerte_adviseur",
    title="Offerte Adviseur (lead marketplace)",
    verifier=VERIFIER,
    mapper=MAPPER,
    data_schema=resources.files("schemas") / "data" / "offerte_adviseur.json",
    examples=EXAMPLES,
    golden_cases=resources.files(__name__) / "golden.json",
    signs=True,
    retries=False,
    raw_key=member_key(RAW_KEY_MEMBERS, partition_key),
)
