"""The verdict of a request in words a user can act on.

Every reason the gateway can give (``hookbus.request.Reason``, the gateway's own refusals
and the publish failures of ``ingest.errors``) has a title, a text and hints. The gateway's
``detail`` already names the header, how old the timestamp was or which address was refused,
and is quoted as it was sent; what the configuration adds is counted, never shown: how many
secret slots were tried, never a secret.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

from hookbus.config import SourceConfig
from hookbus.requestlog import RequestLogEntry

__all__ = ["EXPLAINED_REASONS", "Explanation", "explain"]


@dataclass(frozen=True, slots=True)
class Explanation:
    title: str
    text: str
    hints: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["hints"] = list(self.hints)
        return document


_RETRY_LATER: Final = "A sender that retries will deliver it again; one that does not (OfficeRnD, Octamile) lost it."

_REASONS: Final[dict[str, Explanation]] = {
    "unknown_source": Explanation(
        "Unknown source",
        "No source is configured with the name in the URL (/webhooks/<name>).",
        (
            "Check the URL configured at the provider against the `sources:` names.",
            "A source added to the configuration takes effect when the gateway restarts.",
        ),
    ),
    "missing_signature": Explanation(
        "Signature missing",
        "The request carries no signature where the provider puts one.",
        (
            "Check that the provider signs this webhook (some sign only once a secret is set there).",
            "A proxy in front of the gateway may strip the signature header.",
        ),
    ),
    "malformed_signature": Explanation(
        "Signature unreadable",
        "The signature (or its timestamp) is not in the form the provider documents.",
        (
            "Check the source's provider: a request of another provider has another signature format.",
            "A signature header sent twice is refused as ambiguous.",
        ),
    ),
    "bad_signature": Explanation(
        "Signature does not match",
        "The signature does not match the body under any of the source's secrets.",
        (
            "Compare the secret at the provider with the source's secrets (to rotate, add the new one first).",
            "Anything that changes the body on the way (a proxy re-encoding JSON) breaks the signature.",
        ),
    ),
    "stale_timestamp": Explanation(
        "Timestamp too old or in the future",
        "The signed timestamp is further from the gateway's clock than the source's tolerance.",
        (
            "Check the clocks of the gateway's host (NTP); a replayed or long-delayed request is refused by design.",
            "If the provider retries late by design, raise the source's `tolerance_seconds`.",
        ),
    ),
    "bad_api_key": Explanation(
        "API key missing or wrong",
        "The request has no API key (`api-key` query parameter or `X-API-Key` header), or not the source's.",
        ("Compare the key in the URL configured at the provider with the source's `api_key`.",),
    ),
    "ip_not_allowed": Explanation(
        "Address not allowed",
        "The client address is outside the source's `ip_allowlist`.",
        (
            "Add the provider's published sender ranges to `ip_allowlist`.",
            "Behind a load balancer, list it in `trusted_proxies` so its X-Forwarded-For is believed.",
        ),
    ),
    "method_not_allowed": Explanation(
        "Method not allowed",
        "The HTTP method is not one of the source's `methods`.",
        ("Add the method to the source's `methods` if the provider really sends it.",),
    ),
    "header_not_allowed": Explanation(
        "Required header missing or different",
        "A header the source requires (`required_headers`) is missing, repeated or has another value.",
        ("Check the header configured at the provider against the source's `required_headers`.",),
    ),
    "too_large": Explanation(
        "Body too large",
        "The body is larger than the source's `max_body_bytes`.",
        ("Raise the source's `max_body_bytes` if such bodies are expected.",),
    ),
    "rate_limited": Explanation(
        "Rate limited",
        "The source sent more requests than its `rate_limit` allows.",
        ("Raise the source's `rate_limit` if the rate is legitimate.", _RETRY_LATER),
    ),
    "overloaded": Explanation(
        "Gateway overloaded",
        "The gateway had as much work as it can answer in time and refused this request before reading it.",
        (
            "Look at the gateway's in-flight metrics; add workers (--workers) or instances.",
            _RETRY_LATER,
        ),
    ),
    "answer_deadline": Explanation(
        "Not stored in time",
        "The request was not stored in Kafka (or the spool) within the gateway's answer deadline.",
        ("Look at Kafka's health and the gateway's publish latency.", _RETRY_LATER),
    ),
    "request_timeout": Explanation(
        "Body too slow",
        "The body took longer than the gateway's read timeout to arrive.",
        ("A slow or broken network between sender and gateway; the sender should retry.",),
    ),
    "bad_request": Explanation(
        "Broken request",
        "The connection closed before the body was sent, or its framing is broken.",
        ("The sender or a proxy cut the request short; the sender should retry.",),
    ),
    "expectation_failed": Explanation(
        "Unsupported Expect header",
        "The request asked for an expectation other than 100-continue.",
        ("Send without the Expect header, or with Expect: 100-continue.",),
    ),
    "not_found": Explanation(
        "No such path",
        "The request was not sent to /webhooks/<source>.",
        ("Check the URL configured at the provider.",),
    ),
    "unexpected_error": Explanation(
        "Gateway error",
        "The gateway failed unexpectedly while handling the request.",
        ("Look at the gateway's log at this time for the error.", _RETRY_LATER),
    ),
    "kafka_unavailable": Explanation(
        "Kafka unavailable",
        "Kafka did not acknowledge the request in time and the source does not spool, so it was refused with 503.",
        ("Look at Kafka's health; consider `spool: true` for a source whose provider does not retry.", _RETRY_LATER),
    ),
    "spool_full": Explanation(
        "Spool full",
        "Kafka was slow and the gateway's local spool had no room left.",
        ("Bring Kafka back so the spool drains; raise `gateway.spool_max_bytes`.", _RETRY_LATER),
    ),
    "spool_write_failed": Explanation(
        "Spool write failed",
        "The disk refused the spool write (full, read-only or failing).",
        ("Look at the disk of `gateway.spool_dir`.", _RETRY_LATER),
    ),
}

EXPLAINED_REASONS: Final = frozenset(_REASONS)


def explain(entry: RequestLogEntry, source: SourceConfig | None) -> Explanation:
    """Why ``entry`` was answered as it was; ``source`` is its configuration, if the console knows it."""
    if entry.verdict == "accept":
        if entry.raw is not None and entry.raw.spooled:
            where = "in the gateway's spool, on its way to Kafka"
        elif entry.raw is not None:
            where = f"in {entry.raw.topic}, partition {entry.raw.partition}, offset {entry.raw.offset}"
        else:
            where = "in the raw topic"
        return Explanation("Accepted", f"The request was verified and stored {where}; the sender got {entry.status}.")
    known = _REASONS.get(entry.reason or "")
    base = known or Explanation(
        "Refused" if entry.verdict == "reject" else "Not stored",
        f"The gateway answered {entry.status} with reason {entry.reason or 'none'}.",
    )
    text = base.text
    if entry.detail:
        text += f" The gateway said: {entry.detail}."
    hints = list(base.hints)
    if source is not None and entry.reason in {"bad_signature", "malformed_signature", "stale_timestamp"}:
        slots = len(source.secrets)
        tried = "1 secret slot was" if slots == 1 else f"{slots} secret slots were"
        hints.insert(0, f"{tried} tried for source {source.name!r} (newest first).")
    if source is not None and entry.reason == "stale_timestamp":
        hints.insert(1, f"The tolerance of source {source.name!r} is {source.tolerance_seconds:g} s.")
    if entry.body_omitted == "budget":
        hints.append("The body was not kept: more refused bodies came than the request log keeps per second.")
    return Explanation(base.title, text, tuple(hints))
