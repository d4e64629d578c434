"""Standard Webhooks (any sender following standardwebhooks.com, spec v1): ``webhook-signature``
lists ``v1,<base64 HMAC-SHA256>`` signatures of ``{webhook-id}.{webhook-timestamp}.{body}``,
keyed by the base64 secret after ``whsec_``. The event type is read from the body's ``type``
field, or the one the source's ``type_field`` option names. The specification has senders
retry failed deliveries (on a schedule of days), so the gateway does not spool by default.

Everything hookbus knows of this provider is in this folder; its data schema is
``schemas/data/standard_webhooks.json``.
"""

from __future__ import annotations

from importlib import resources

from hookbus.provider import Provider

from .examples import EXAMPLES
from .mapper import MAPPER, PROVIDER_NAME, TYPE_FIELD_OPTION, raw_key
from .verifier import VERIFIER

__all__ = ["PROVIDER"]

PROVIDER = Provider(
    name=PROVIDER_NAME,
    title="Standard Webhooks (any sender following the specification)",
    verifier=VERIFIER,
    mapper=MAPPER,
    data_schema=resources.files("schemas") / "data" / f"{PROVIDER_NAME}.json",
    examples=EXAMPLES,
    golden_cases=resources.files(__name__) / "golden.json",
    signs=True,
    retries=True,
    option_keys=frozenset({TYPE_FIELD_OPTION}),
    raw_key=raw_key,
)
