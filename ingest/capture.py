"""Capture: an accepted request as the raw event the gateway publishes.

The gateway and ``hookbus normalize`` both build raw events here, so what is replayed
offline is exactly what the gateway would have published. The body is kept byte for
byte, and so are the kept headers' values (text that gives back the received bytes, see
:mod:`hookbus.rawevent`); credentials and required-header values never are, whatever the
configuration asks.
"""

from __future__ import annotations

from hookbus.config import SourceConfig
from hookbus.rawevent import AuthMethod, RawEvent, without_credentials
from hookbus.request import RawRequest, never_kept_headers


def capture(  # noqa: PLR0917 - the gateway and `hookbus normalize` call it positionally
    source: SourceConfig,
    request: RawRequest,
    auth: AuthMethod,
    received_at: float,
    ingest_id: str,
    kept_headers: frozenset[str],
    *,
    entity: str | None = None,
) -> RawEvent:
    """The raw event of an accepted request.

    ``kept_headers`` are lowercase header names (``ingest.decision.kept_headers(source)``);
    of a header sent several times, the first value is kept, as verification reads it.
    Whatever they name, credentials and the source's required headers are never kept
    (:func:`~hookbus.request.never_kept_headers`). ``entity`` keys the raw record
    (:attr:`RawEvent.entity <hookbus.rawevent.RawEvent.entity>`).
    """
    never_kept = never_kept_headers(source.required_headers)
    headers = {
        name: value
        for name in sorted({kept.lower() for kept in kept_headers})
        if name not in never_kept and (value := request.headers.get(name)) is not None
    }
    return RawEvent(
        source=source.name,
        provider=source.provider,
        ingest_id=ingest_id,
        received_at=received_at,
        body=request.body,
        content_type=request.headers.get("Content-Type", ""),
        client_addr=request.client_addr,
        method=request.method,
        auth=auth,
        headers=headers,
        query=without_credentials(request.query.items()),
        entity=entity,
    )
