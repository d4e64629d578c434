"""October (lending platform, API "O5R"): ``X-O5R-HASH`` is the hex HMAC-SHA256 of
``X-O5R-TIMESTAMP`` (milliseconds) and the raw body. October retries failed deliveries.

Everything hookbus knows of this provider is in this folder; its data schema is
``schemas/data/october.json``.
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
    name="october",
    title='October (lending platform, API "O5R")',
    verifier=VERIFIER,
    mapper=MAPPER,
    data_schema=resources.files("schemas") / "data" / "october.json",
    examples=EXAMPLES,
    golden_cases=resources.files(__name__) / "golden.json",
    signs=True,
    retries=True,
    raw_key=member_key(RAW_KEY_MEMBERS, partition_key),
)
