"""Octamile signs nothing. A source is authenticated by its API key (the ``api-key`` query
parameter of the URL registered with Octamile, or an ``X-API-Key`` header) and its IP
allowlist, both judged by :func:`ingest.decision.decide`; nothing is left to check here.
"""

from __future__ import annotations

from hookbus.config import SourceConfig
from hookbus.errors import ConfigError
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, RawRequest, Verdict
from hookbus.verifying import Verifier, fixed_headers


def verify(source: SourceConfig, request: RawRequest, now: float) -> Verdict:
    return Accept(AuthMethod.NONE)


def check_options(source: SourceConfig) -> None:
    # Secrets alone would pass the generic "authenticated somehow" check of the config and
    # leave the source open to anyone: Octamile never uses them.
    if source.secrets:
        raise ConfigError(
            "octamile signs nothing, so secrets are never checked: use api_key or ip_allowlist", key="secrets"
        )


VERIFIER = Verifier(verify=verify, kept_headers=fixed_headers(), check_options=check_options)
