"""OfficeRnD (coworking management): ``officernd-signature: t=<seconds>,signature=<hex HMAC-
SHA256(body.t)>``; every event type of the documentation. OfficeRnD never retries.

Everything hookbus knows of this provider is in this folder; its data schema is
``schemas/data/officernd.json``.
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
    name="officernd",
    title="OfficeRnD (coworking management)",
    verifier=VERIFIER,
    mapper=MAPPER,
    data_schema=resources.files("schemas") / "data" / "officernd.json",
    examples=EXAMPLES,
    golden_cases=resources.files(__name__) / "golden.json",
    signs=True,
    retries=False,
    raw_key=member_key(RAW_KEY_MEMBERS, partition_key),
)
