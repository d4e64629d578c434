"""The console's OpenAPI 3.1 document, ``GET /api/openapi.json``, written by hand: the API
is a contract shared with the page and with scripts, so it is declared, not derived."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["openapi_document"]

_NULLABLE_STRING: Final = {"type": ["string", "null"]}
_NULLABLE_INTEGER: Final = {"type": ["integer", "null"]}
_NUMBER: Final = {"type": "number"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], *, open_: bool = False) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": open_,
    }


def _page(item: str) -> dict[str, Any]:
    return _object({"items": {"type": "array", "items": _ref(item)}, "next": _NULLABLE_STRING})


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _json_answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_TOO_MANY_ATTEMPTS: Final = {
    **_json_answer(
        "Too many failed sign-ins (POST /login or a wrong bearer token) from this address lately; error "
        "too_many_attempts. The token is not compared until Retry-After has passed",
        _ref("Error"),
    ),
    "headers": {
        "Retry-After": {
            "description": "Whole seconds until this address may try again",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}
_ERRORS: Final = {
    "400": _json_answer("A parameter or body the API cannot take", _ref("Error")),
    "401": _json_answer("No token, or not the console's", _ref("Error")),
    "429": _TOO_MANY_ATTEMPTS,
}
_SINCE_UNTIL: Final = [
    _query("since", _NUMBER, "Unix seconds: at or after"),
    _query("until", _NUMBER, "Unix seconds: before"),
]
_PAGING: Final = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "Items per page"),
    _query("before", {"type": "string"}, "The `next` of the previous page"),
]
_ID: Final = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "Request id"}

_SCHEMAS: Final[dict[str, Any]] = {
    "Error": _object({"error": {"type": "string"}, "detail": {"type": "string"}}),
    "RequestSummary": _object(
        {
            "id": {"type": "string"},
            "time": _NUMBER,
            "source": {"type": "string"},
            "provider": _NULLABLE_STRING,
            "method": {"type": "string"},
            "verdict": {"enum": ["accept", "reject", "failed"]},
            "reason": _NULLABLE_STRING,
            "status": {"type": "integer"},
            "size": _NULLABLE_INTEGER,
            "ingest_id": _NULLABLE_STRING,
            "event_id": _NULLABLE_STRING,
            "event_type": _NULLABLE_STRING,
            "subject": _NULLABLE_STRING,
            "delivery": {"enum": [None, "pending", "written", "retrying", "dead_lettered"]},
        }
    ),
    "Body": _object(
        {
            "kind": {"enum": ["json", "text", "binary", "none"]},
            "text": _NULLABLE_STRING,
            "size": _NULLABLE_INTEGER,
            "content_type": _NULLABLE_STRING,
            "file_type": _NULLABLE_STRING,
            "truncated": {"type": "boolean"},
            "source": {"enum": ["raw", "refused_prefix", None]},
        }
    ),
    "Explanation": _object(
        {
            "title": {"type": "string"},
            "text": {"type": "string"},
            "hints": {"type": "array", "items": {"type": "string"}},
        }
    ),
    "DeadLetter": _object(
        {
            "id": {"type": "string", "description": "<topic>:<partition>:<offset>"},
            "topic": {"type": "string"},
            "partition": {"type": "integer"},
            "offset": {"type": "integer"},
            "time": _NUMBER,
            "stage": {"type": "string", "description": "normalizer or sink:<name>"},
            "sink": _NULLABLE_STRING,
            "reason": {"type": "string"},
            "detail": {"type": "string"},
            "source": _NULLABLE_STRING,
            "ingest_id": _NULLABLE_STRING,
            "event_id": _NULLABLE_STRING,
            "request_id": _NULLABLE_STRING,
            "edited": {"type": "boolean"},
        }
    ),
    "DeliveryReport": {
        "type": "object",
        "description": "A record of the deliveries topic (hookbus.delivery), as published by the sink",
        "required": ["v", "time", "sink", "event_id", "outcome", "attempt"],
        "properties": {
            "v": {"const": 1},
            "time": _NUMBER,
            "sink": {"type": "string"},
            "event_id": {"type": "string"},
            "ingest_id": _NULLABLE_STRING,
            "type": _NULLABLE_STRING,
            "subject": _NULLABLE_STRING,
            "outcome": {"enum": ["written", "retry", "dead_lettered"]},
            "attempt": {"type": "integer", "minimum": 1},
            "reason": _NULLABLE_STRING,
            "detail": _NULLABLE_STRING,
            "dead_letter_topic": _NULLABLE_STRING,
        },
    },
    "RequestDetail": _object(
        {
            "request": {
                "type": "object",
                "description": "The request-log entry (hookbus.requestlog), without body_prefix",
            },
            "body": _ref("Body"),
            "explanation": _ref("Explanation"),
            "event": {"type": ["object", "null"], "description": "The CloudEvent, structured JSON"},
            "event_text": {
                "type": ["string", "null"],
                "description": "The CloudEvent as the page shows it: indented, every number exact, an embedded file"
                " described in place of its base64, cut at 256 KiB",
            },
            "dead_letters": {"type": "array", "items": _ref("DeadLetter")},
            "deliveries": {"type": "array", "items": _ref("DeliveryReport")},
            "trace": {
                "oneOf": [
                    {"type": "null"},
                    _object({"traceparent": {"type": "string"}, "tracestate": _NULLABLE_STRING}),
                ]
            },
        }
    ),
    "ReplayRequest": {
        "type": "object",
        "description": "Either dead_letters or filter; body only with exactly one dead letter",
        "properties": {
            "dead_letters": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 500},
            "filter": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "stage": {"type": "string"},
                    "reason": {"type": "string"},
                    "source": {"type": "string"},
                    "since": _NUMBER,
                    "until": _NUMBER,
                },
            },
            "dry_run": {"type": "boolean", "default": False},
            "body": {"type": "string", "description": "A corrected body: published flagged as edited"},
        },
        "additionalProperties": False,
    },
    "ReplayOutcome": _object(
        {
            "dry_run": {"type": "boolean"},
            "selected": {"type": "integer"},
            "replayed": {"type": "integer"},
            "still_failing": {"type": "integer"},
            "by_reason": {"type": "object", "additionalProperties": {"type": "integer"}},
        }
    ),
    "Stats": _object(
        {
            "requests_per_minute": {
                "type": "array",
                "items": _object(
                    {
                        "minute": _NUMBER,
                        "source": {"type": "string"},
                        "verdict": {"type": "string"},
                        "count": {"type": "integer"},
                    }
                ),
            },
            "lag": {
                "type": "array",
                "items": _object(
                    {"stage": {"type": "string"}, "group": {"type": "string"}, "lag": {"type": "integer"}}
                ),
            },
        }
    ),
    "Filters": _object(
        {
            name: {"type": "array", "items": {"type": "string"}}
            for name in ("sources", "providers", "verdicts", "reasons", "types")
        }
    ),
}

_OPEN: Final[list[dict[str, list[str]]]] = []
"""The security requirement of the paths that need no token."""


def _get(summary: str, answer: dict[str, Any], *, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {"200": answer, **_ERRORS}}
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _paths() -> dict[str, Any]:
    return {
        "/": {
            "get": {
                "summary": "The console's page; redirects to /login without a token",
                "responses": {
                    "200": _html("The page"),
                    "302": {"description": "To /login"},
                    "429": _TOO_MANY_ATTEMPTS,
                },
            }
        },
        "/static/{path}": {
            "get": {
                "summary": "The page's assets",
                "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "The file"},
                    "302": {"description": "To /login"},
                    "429": _TOO_MANY_ATTEMPTS,
                },
            }
        },
        "/login": {
            "get": {"summary": "The sign-in form", "security": _OPEN, "responses": {"200": _html("The form")}},
            "post": {
                "summary": "Sign in: sets the HttpOnly, SameSite=Strict cookie hookbus_console",
                "security": _OPEN,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": _object({"token": {"type": "string"}}),
                        }
                    },
                },
                "responses": {
                    "303": {"description": "Signed in: to /"},
                    "401": _html("Not the console's token: the form again"),
                    "429": _TOO_MANY_ATTEMPTS,
                },
            },
        },
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "security": _OPEN,
                "responses": {"200": _json_answer("Alive", _object({"status": {"const": "alive"}}))},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness: the index is being fed",
                "security": _OPEN,
                "responses": {
                    "200": _json_answer("Ready", {"type": "object"}),
                    "503": _json_answer("Not ready, and why", {"type": "object"}),
                },
            }
        },
        "/api/openapi.json": _get("This document", _json_answer("OpenAPI 3.1", {"type": "object"})),
        "/api/v1/requests": _get(
            "Requests the gateway answered, newest first",
            _json_answer("A page of requests", _page("RequestSummary")),
            parameters=[
                _query("source", {"type": "string"}, "Source name"),
                _query("provider", {"type": "string"}, "Provider name"),
                _query("verdict", {"enum": ["accept", "reject", "failed"]}, "Verdict"),
                _query("reason", {"type": "string"}, "Refusal reason"),
                _query("type", {"type": "string"}, "Event type"),
                _query("status", {"type": "integer"}, "HTTP status answered"),
                *_SINCE_UNTIL,
                _query("q", {"type": "string"}, "Exact ingest id, event id or subject"),
                _query("after", _NUMBER, "Unix seconds: only entries newer than this (live updates)"),
                *_PAGING,
            ],
        ),
        "/api/v1/requests/{id}": {
            "get": {
                "summary": "One request: body, verdict explained, event, dead letters, deliveries, trace",
                "parameters": [_ID],
                "responses": {
                    "200": _json_answer("The request", _ref("RequestDetail")),
                    "404": _json_answer("Not in the index", _ref("Error")),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/requests/{id}/body": {
            "get": {
                "summary": "The body as received (accepted) or its kept prefix (refused), as a download",
                "parameters": [_ID],
                "responses": {
                    "200": {
                        "description": "The bytes",
                        "content": {
                            "application/octet-stream": {"schema": {"type": "string", "contentEncoding": "binary"}}
                        },
                    },
                    "404": _json_answer("No body kept", _ref("Error")),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/dead-letters": _get(
            "Dead letters of the normalizer and of every sink, newest first",
            _json_answer("A page of dead letters", _page("DeadLetter")),
            parameters=[
                _query("stage", {"type": "string"}, "normalizer or sink:<name>"),
                _query("reason", {"type": "string"}, "Dead letter reason"),
                _query("source", {"type": "string"}, "Source name"),
                *_SINCE_UNTIL,
                *_PAGING,
            ],
        ),
        "/api/v1/replays": {
            "post": {
                "summary": "Replay dead letters (ids or a filter), a dry run first; or one with a corrected body",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ReplayRequest")}}},
                "responses": {
                    "200": _json_answer("What was (or would be) replayed", _ref("ReplayOutcome")),
                    "503": _json_answer("Kafka or the sink is unavailable; replaying again is safe", _ref("Error")),
                    **_ERRORS,
                },
            }
        },
        "/api/v1/stats": _get(
            "Requests per minute by source and verdict; lag per stage",
            _json_answer("Stats", _ref("Stats")),
            parameters=[_query("minutes", {"type": "integer", "minimum": 1, "default": 60}, "How far back")],
        ),
        "/api/v1/filters": _get("The values seen, for the page's selects", _json_answer("Values", _ref("Filters"))),
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hookbus console",
            "version": "1",
            "description": (
                "The request log, events, dead letters and deliveries of a hookbus pipeline (docs/console.md)."
            ),
        },
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": _paths(),
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "console.token"},
                "cookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "hookbus_console",
                    "description": "Set by POST /login",
                },
            },
        },
    }
