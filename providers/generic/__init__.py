"""Generic (any system, Octolis-style configurable source): API key, allowed methods, required
headers, IP allowlist, an optional HMAC in a header of the user's choosing, and a mapping of
JSON pointers or headers to the event's attributes.

Everything hookbus knows of this provider is in this folder; its data schema is
``schemas/data/generic.json``.
"""

from __future__ import annotations

from importlib import resources

from hookbus.provider import Provider

from .examples import EXAMPLES
from .mapper import MAPPER, raw_key
from .options import GenericOptions
from .verifier import VERIFIER

__all__ = ["PROVIDER"]

PROVIDER = Provider(
    name="generic",
    title="Generic (any system, Octolis-style configurable source)",
    verifier=VERIFIER,
    mapper=MAPPER,
    data_schema=resources.files("schemas") / "data" / "generic.json",
    examples=EXAMPLES,
    golden_cases=resources.files(__name__) / "golden.json",
    signs=False,
    retries=False,
    options_type=GenericOptions,
    raw_key=raw_key,
)
