"""October (lending platform, API "O5R"): ``X-O5R-HASH`` is the hex HMAC-SHA256 of
``X-O5R-TIMESTAMP`` (milliseconds) and the raw body. October retries failed deliveries.

Everything hookbus knows of this provider is in this folder; its data schema is
``schemas/data/october.json``.
"""

from __future__ import annotations

from importlib import resources

from hookbus.provider import Provider

from .examples import EXAMPLES
from .mapper import MAPPER
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
)
