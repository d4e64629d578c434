"""Gitea (self-hosted Git forge): ``X-Gitea-Signature`` is the hex HMAC-SHA256 of the raw
body; no timestamp. Gitea does not redeliver a failed delivery by itself.

A third-party hookbus provider, and the worked example of docs/writing-a-provider.md:
everything hookbus knows of Gitea is in this package, its data schema included
(``schema.json``), and the entry point ``gitea`` of the ``hookbus.providers`` group
registers it.
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
    name="gitea",
    title="Gitea (self-hosted Git forge)",
    verifier=VERIFIER,
    mapper=MAPPER,
    data_schema=resources.files(__name__) / "schema.json",
    examples=EXAMPLES,
    golden_cases=resources.files(__name__) / "golden.json",
    signs=True,
    retries=False,
    raw_key=member_key(RAW_KEY_MEMBERS, partition_key),
)
