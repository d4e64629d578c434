"""Gitea's example events and signing, from its webhook documentation (one event per type).

Gitea names the event in a header, not in the body, and :attr:`Examples.sign` is given the
body only: the event is read back from the body's shape (each of Gitea's payloads has a
field of its own), exactly for the bodies :func:`body` builds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime

from hookbus.example_data import hmac_hex, iso_seconds, require_secret, small_number
from hookbus.mapping import JsonObject
from hookbus.provider import Credentials, Examples, SignedRequest

from .mapper import KNOWN_TYPES

BASE_URL = "https://gitea.example.com"
OWNER = {"id": 1, "login": "acme", "full_name": "Acme", "email": "dev@acme.example", "username": "acme"}
SENDER = {"id": 7, "login": "alice", "full_name": "Alice", "email": "alice@acme.example", "username": "alice"}


def _sha() -> str:
    return secrets.token_hex(20)


def _repository() -> JsonObject:
    full_name = "acme/widgets"
    return {
        "id": 140,
        "owner": OWNER,
        "name": "widgets",
        "full_name": full_name,
        "description": "Widgets, and the parts they are made of",
        "private": False,
        "fork": False,
        "html_url": f"{BASE_URL}/{full_name}",
        "ssh_url": f"git@gitea.example.com:{full_name}.git",
        "clone_url": f"{BASE_URL}/{full_name}.git",
        "default_branch": "main",
    }


def _issue(number: int, state: str, now: datetime) -> JsonObject:
    return {
        "id": small_number(10_000, 99_999),
        "url": f"{BASE_URL}/api/v1/repos/acme/widgets/issues/{number}",
        "html_url": f"{BASE_URL}/acme/widgets/issues/{number}",
        "number": number,
        "user": SENDER,
        "title": "Widgets rattle at high speed",
        "body": "Seen on the blue ones since 2.3.",
        "ref": "",
        "labels": [],
        "milestone": None,
        "assignees": None,
        "state": state,
        "comments": 0,
        "created_at": iso_seconds(now),
        "updated_at": iso_seconds(now),
        "closed_at": iso_seconds(now) if state == "closed" else None,
    }


def _pull_request(number: int, state: str, now: datetime) -> JsonObject:
    merged = state == "closed"
    return {
        "id": small_number(10_000, 99_999),
        "url": f"{BASE_URL}/acme/widgets/pulls/{number}",
        "number": number,
        "user": SENDER,
        "title": "Damp the rattle",
        "body": "Fixes the rattle at high speed.",
        "state": state,
        "html_url": f"{BASE_URL}/acme/widgets/pulls/{number}",
        "mergeable": True,
        "merged": merged,
        "merged_at": iso_seconds(now) if merged else None,
        "merge_commit_sha": _sha() if merged else None,
        "base": {"label": "main", "ref": "main", "sha": _sha(), "repo_id": 140},
        "head": {"label": "damp-rattle", "ref": "damp-rattle", "sha": _sha(), "repo_id": 140},
        "created_at": iso_seconds(now),
        "updated_at": iso_seconds(now),
        "closed_at": iso_seconds(now) if merged else None,
    }


def _push(now: datetime) -> JsonObject:
    before, after = _sha(), _sha()
    commit = {
        "id": after,
        "message": "Damp the rattle\n",
        "url": f"{BASE_URL}/acme/widgets/commit/{after}",
        "author": {"name": "Alice", "email": "alice@acme.example", "username": "alice"},
        "committer": {"name": "Alice", "email": "alice@acme.example", "username": "alice"},
        "timestamp": iso_seconds(now),
        "added": [],
        "removed": [],
        "modified": ["damper.go"],
    }
    return {
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "compare_url": f"{BASE_URL}/acme/widgets/compare/{before}...{after}",
        "commits": [commit],
        "total_commits": 1,
        "head_commit": commit,
        "repository": _repository(),
        "pusher": SENDER,
        "sender": SENDER,
    }


def body(event_type: str, now: datetime) -> JsonObject:
    event, _, action = event_type.partition(".")
    number = small_number(1, 999)
    if event == "push":
        return _push(now)
    if event == "create":
        return {"sha": _sha(), "ref": "v2.4.0", "ref_type": "tag", "repository": _repository(), "sender": SENDER}
    if event == "delete":
        ref = f"damp-rattle-{number}"
        return {"ref": ref, "ref_type": "branch", "pusher_type": "user", "repository": _repository(), "sender": SENDER}
    if event == "release":
        release_id = small_number(100, 9_999)
        return {
            "action": action,
            "release": {
                "id": release_id,
                "tag_name": "v2.4.0",
                "target_commitish": "main",
                "name": "2.4.0",
                "body": "Quieter widgets.",
                "url": f"{BASE_URL}/api/v1/repos/acme/widgets/releases/{release_id}",
                "html_url": f"{BASE_URL}/acme/widgets/releases/tag/v2.4.0",
                "draft": False,
                "prerelease": False,
                "created_at": iso_seconds(now),
                "published_at": iso_seconds(now),
                "author": SENDER,
            },
            "repository": _repository(),
            "sender": SENDER,
        }
    state = "closed" if action == "closed" else "open"
    document: JsonObject = {"action": action, "number": number}
    if event == "issues":
        document["issue"] = _issue(number, state, now)
    else:
        document["pull_request"] = _pull_request(number, state, now)
    if action == "edited":
        document["changes"] = {"title": {"from": "Widgets rattle"}}
    document["repository"] = _repository()
    document["sender"] = SENDER
    if event == "pull_request":
        document["commit_id"] = ""
    return document


def sign(body: bytes, event_type: str, credentials: Credentials, now: float) -> SignedRequest:
    """``X-Gitea-Signature``: hex HMAC-SHA256(secret, body); Gitea sends no timestamp.

    The headers are those Gitea sends: its own, and the Gogs and GitHub compatible copies.
    """
    secret = require_secret("gitea", credentials)
    signature = hmac_hex(secret, body)
    delivery = str(uuid.uuid4())
    headers = {"Content-Type": "application/json", "X-Gitea-Delivery": delivery}
    event = event_type.partition(".")[0]
    headers.update({"X-Gitea-Event": event, "X-Gitea-Event-Type": event})
    headers.update({"X-Gogs-Event": event, "X-GitHub-Event": event})
    headers.update({"X-Gogs-Delivery": delivery, "X-GitHub-Delivery": delivery})
    headers["X-Gitea-Signature"] = signature
    headers["X-Gogs-Signature"] = signature
    headers["X-Hub-Signature"] = "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()
    headers["X-Hub-Signature-256"] = "sha256=" + signature
    return SignedRequest(headers)


EXAMPLES = Examples(
    # Every type the mapper names, so `hookbus send gitea` shows them all.
    event_types=KNOWN_TYPES,
    body=body,
    sign=sign,
    source={"secrets": ["${SECRET}"]},
)
