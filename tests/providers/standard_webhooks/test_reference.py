"""Against the reference implementation (the ``standardwebhooks`` package of the Standard
Webhooks project): what it signs, the gateway accepts; what our examples sign, it accepts;
and where one refuses a request, so does the other."""

from __future__ import annotations

import base64
import secrets
import time
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hookbus.config import SourceConfig
from hookbus.provider import Credentials, provider
from hookbus.rawevent import AuthMethod
from hookbus.request import Accept, Reason, Reject
from ingest.decision import decide
from tests.providers.builders import request_of, source_of
from tools.send import example_body

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RANDOM_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
# What `hookbus dev` writes into the example source: whsec_ and 64 generated hex digits.
DEV_STYLE_SECRET = "whsec_" + secrets.token_hex(32)
EXAMPLES = provider("standard_webhooks").examples
SENT_AT = 1_767_600_000
ACCEPTED = Accept(AuthMethod.SIGNATURE)


def reference_headers(secret: str, message_id: str, body: str, sent_at: int = SENT_AT) -> dict[str, str]:
    signature = Webhook(secret).sign(message_id, datetime.fromtimestamp(sent_at, tz=UTC), body)
    return {"webhook-id": message_id, "webhook-timestamp": str(sent_at), "webhook-signature": signature}


def source_with(*secrets_: str) -> SourceConfig:
    return source_of("standard_webhooks", secrets=list(secrets_))


@pytest.mark.parametrize("secret", [SPEC_SECRET, RANDOM_SECRET, DEV_STYLE_SECRET], ids=["spec", "random", "dev"])
def test_requests_the_reference_signs_are_accepted(secret: str) -> None:
    body = '{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52"}}'
    request = request_of(body.encode(), reference_headers(secret, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", body))
    assert decide(source_with(secret), request, SENT_AT + 5) == ACCEPTED


@settings(max_examples=60, deadline=None)
@given(
    message_id=st.text(st.characters(codec="utf-8", exclude_characters=".\r\n\x00"), min_size=1, max_size=40).filter(
        lambda text: text.strip() == text and text.isprintable()
    ),
    body=st.text(max_size=300),
    key=st.binary(min_size=1, max_size=64),
)
def test_anything_the_reference_signs_is_accepted(message_id: str, body: str, key: bytes) -> None:
    secret = "whsec_" + base64.b64encode(key).decode()
    request = request_of(body.encode(), reference_headers(secret, message_id, body))
    assert decide(source_with(secret), request, SENT_AT) == ACCEPTED


def test_a_reference_signature_under_a_rotated_out_secret_is_still_accepted_while_listed() -> None:
    body = '{"type":"invoice.paid"}'
    request = request_of(body.encode(), reference_headers(RANDOM_SECRET, "msg_1", body))
    assert decide(source_with(SPEC_SECRET, RANDOM_SECRET), request, SENT_AT) == ACCEPTED
    verdict = decide(source_with(SPEC_SECRET), request, SENT_AT)
    assert isinstance(verdict, Reject)
    assert verdict.reason is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("event_type", EXAMPLES.event_types)
@pytest.mark.parametrize(
    ("secret", "credential"),
    [
        (SPEC_SECRET, SPEC_SECRET),
        (RANDOM_SECRET, RANDOM_SECRET),
        (DEV_STYLE_SECRET, DEV_STYLE_SECRET),
        # hookbus send signs with the stored credential, which has no prefix.
        (DEV_STYLE_SECRET, DEV_STYLE_SECRET.removeprefix("whsec_")),
    ],
    ids=["spec", "random", "dev-printed", "dev-stored"],
)
def test_the_reference_accepts_what_our_examples_sign(event_type: str, secret: str, credential: str) -> None:
    now = time.time()  # the reference checks the timestamp against its own clock
    body = example_body("standard_webhooks", event_type, now=now)
    signed = EXAMPLES.sign(body, event_type, Credentials(secret=credential.encode()), now)
    assert Webhook(secret).verify(body, signed.headers) == orjson.loads(body)
    # ...and so does the gateway, for a source configured with that secret.
    assert decide(source_with(secret), request_of(body, signed.headers), now) == ACCEPTED


def test_where_the_reference_refuses_so_does_the_gateway() -> None:
    now = time.time()
    body = example_body("standard_webhooks", now=now)
    headers = EXAMPLES.sign(body, EXAMPLES.event_types[0], Credentials(secret=SPEC_SECRET.encode()), now).headers
    tampered = body.replace(b'"type":', b'"type" :')
    variants = {
        "body": (tampered, headers),
        "id": (body, {**headers, "webhook-id": headers["webhook-id"] + "x"}),
        "timestamp": (body, {**headers, "webhook-timestamp": str(int(now) + 1)}),
        "secret": (
            body,
            EXAMPLES.sign(body, EXAMPLES.event_types[0], Credentials(secret=RANDOM_SECRET.encode()), now).headers,
        ),
    }
    for name, (sent, sent_headers) in variants.items():
        with pytest.raises(WebhookVerificationError):
            Webhook(SPEC_SECRET).verify(sent, sent_headers)
        verdict = decide(source_with(SPEC_SECRET), request_of(sent, sent_headers), now)
        assert isinstance(verdict, Reject), name
        assert verdict.reason is Reason.BAD_SIGNATURE, name
