"""OpenAPI of the API: ``responses=`` for every route (each status it can answer, with
examples) and :func:`finish`, which makes the generated document match the answers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ingest_api.examples import EXAMPLE_EVENTS
from ingest_api.models import (
    AcceptedModel,
    BatchModel,
    ErrorModel,
    HealthModel,
    SchemaModel,
)
from schemas.catalogue import SCHEMA_IDS


def _error(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    retryable: bool = False,
) -> dict[str, Any]:
    return {
        "status": status,
        "code": code,
        "message": message,
        "field": field,
        "errors": errors or [],
        "errors_omitted": 0,
        "retryable": retryable,
    }


ERROR_EXAMPLES: dict[int, dict[str, dict[str, Any]]] = {
    400: {
        "malformed_json": _error(
            400,
            "malformed_json",
            "malformed JSON: unexpected character: line 1 column 12 (char 11)",
        ),
        "empty_body": _error(400, "empty_body", "the body is empty; send a JSON document"),
        "bad_content_length": _error(400, "bad_content_length", "Content-Length is not a number"),
        "bad_gzip": _error(
            400,
            "bad_gzip",
            "the body is labelled Content-Encoding: gzip but is not gzip data",
        ),
        "bad_request_head": _error(
            400, "bad_request_head", "the request line or headers cannot be parsed"
        ),
        "invalid_idempotency_key": _error(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1-255 printable ASCII characters",
        ),
    },
    401: {
        "unauthenticated": _error(
            401,
            "unauthenticated",
            "send an API key in 'Authorization: Bearer <key>' or 'X-API-Key'",
        ),
        "invalid_api_key": _error(401, "invalid_api_key", "the API key is not valid"),
    },
    403: {
        "event_type_forbidden": _error(
            403, "event_type_forbidden", "this API key may not send insurance-claim events"
        ),
        "tenant_forbidden": _error(
            403,
            "tenant_forbidden",
            "this API key may not send events of this tenant",
            field="tenant_id",
            errors=[
                {
                    "code": "tenant_forbidden",
                    "message": "tenant not allowed for this API key",
                    "field": "tenant_id",
                }
            ],
        ),
    },
    404: {
        "unknown_event_type": _error(
            404,
            "unknown_event_type",
            "unknown event type 'card-swipe'; known: financial-transaction, insurance-claim",
        ),
        "not_found": _error(404, "not_found", "no route for /v2/events"),
    },
    405: {"method_not_allowed": _error(405, "method_not_allowed", "GET is not allowed here")},
    408: {
        "body_timeout": _error(
            408, "body_timeout", "the body did not arrive within 10 s", retryable=True
        ),
    },
    409: {
        "idempotency_conflict": _error(
            409,
            "idempotency_conflict",
            "this idempotency key (or event_id) was already used for a different event",
        ),
        "idempotency_in_progress": _error(
            409,
            "idempotency_in_progress",
            "the same event is being published by another request; send it again",
            retryable=True,
        ),
    },
    413: {
        "body_too_large": _error(
            413, "body_too_large", "body of 2097152 bytes is over the limit of 1048576 bytes"
        ),
        "decompressed_too_large": _error(
            413,
            "decompressed_too_large",
            "the gzip body decompresses to more than 4194304 bytes "
            "(at most 4194304 bytes and 50 times its size)",
        ),
        "too_many_events": _error(
            413,
            "too_many_events",
            "the batch holds 501 events; at most 500 are allowed",
            field="events",
        ),
    },
    415: {
        "unsupported_charset": _error(
            415, "unsupported_charset", "charset 'latin-1' is not supported; send UTF-8"
        ),
        "unsupported_content_encoding": _error(
            415,
            "unsupported_content_encoding",
            "Content-Encoding must be gzip or identity (or absent)",
        ),
        "unsupported_media_type": _error(
            415,
            "unsupported_media_type",
            "Content-Type 'text/plain' is not supported; send application/json",
        ),
    },
    422: {
        "validation_failed": _error(
            422,
            "validation_failed",
            "the event does not match the financial-transaction schema (2 error(s))",
            errors=[
                {
                    "code": "invalid_format",
                    "message": "not an ISO 3166-1 alpha-2 country code",
                    "field": "merchant.country",
                },
                {"code": "missing", "message": "required field is missing", "field": "account_id"},
            ],
        ),
        "unknown_field": _error(
            422,
            "validation_failed",
            "the event does not match the financial-transaction schema (1 error(s))",
            field="colour",
            errors=[{"code": "unknown_field", "message": "unknown field", "field": "colour"}],
        ),
        "server_owned": _error(
            422,
            "validation_failed",
            "the event does not match the financial-transaction schema (1 error(s))",
            field="ingested_at",
            errors=[
                {
                    "code": "server_owned",
                    "message": "set by the server; clients may not send it",
                    "field": "ingested_at",
                }
            ],
        ),
        "unencodable": _error(
            422,
            "unencodable",
            "the event cannot be encoded: financial-transaction v2: record does not fit the schema",
        ),
        "invalid_type": _error(
            422,
            "invalid_type",
            "an event must be a JSON object",
            errors=[{"code": "invalid_type", "message": "expected a JSON object", "field": None}],
        ),
    },
    429: {
        "rate_limited": _error(
            429,
            "rate_limited",
            "rate limit of 100 requests/s exceeded; retry after 1 s",
            retryable=True,
        )
    },
    503: {
        "publish_timeout": _error(
            503, "publish_timeout", "the broker did not acknowledge within 5.0 s", retryable=True
        ),
        "publish_failed": _error(
            503,
            "publish_failed",
            "the broker did not acknowledge the event (NOT_ENOUGH_REPLICAS)",
            retryable=True,
        ),
        "pii_key_missing": _error(
            503,
            "pii_key_missing",
            "the server cannot mask this event's PII right now",
            retryable=True,
        ),
        "unavailable": _error(
            503,
            "unavailable",
            "the request could not be served; nothing was accepted",
            retryable=True,
        ),
        "broker_unavailable": _error(
            503, "broker_unavailable", "the broker cannot take events right now", retryable=True
        ),
        "store_unavailable": _error(
            503,
            "store_unavailable",
            "duplicates cannot be checked right now; send the event again",
            retryable=True,
        ),
    },
    499: {
        "client_closed_request": _error(
            499,
            "client_closed_request",
            "the client closed the connection before the body arrived",
        )
    },
}

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Malformed JSON, empty body or bad header.",
    401: "No API key, or an unknown one.",
    403: "The key may not send this event type, or this tenant's events.",
    404: "Unknown event type (or route).",
    405: "Method not allowed on this route; the Allow header lists the methods it serves.",
    408: "The body did not arrive within the read bound.",
    409: (
        "Idempotency key (or event_id) reused for a different event, or the same event is "
        "being published by another request right now (retryable, Retry-After)."
    ),
    413: "Body over the size limit (checked before parsing) or too many events in a batch.",
    415: (
        "Content-Type is not JSON, a charset other than UTF-8, or a Content-Encoding "
        "other than gzip."
    ),
    422: (
        "The event does not match its schema or rules: the field errors (at most "
        "SLUICE_API_MAX_FIELD_ERRORS per event, the rest counted in errors_omitted)."
    ),
    429: "Rate limit of the key exceeded; see Retry-After.",
    503: "The broker failed or did not acknowledge in time; nothing was accepted. See Retry-After.",
    499: "The client closed the connection mid-request (never received; counted in metrics).",
}

RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for the given error statuses, with examples."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "model": ErrorModel,
            "description": ERROR_DESCRIPTIONS[status],
            "content": {
                "application/json": {
                    "examples": {
                        name: {"summary": name.replace("_", " "), "value": value}
                        for name, value in ERROR_EXAMPLES[status].items()
                    }
                }
            },
        }
        if status in (408, 409, 429, 503):
            entry["headers"] = RETRY_AFTER_HEADER
        out[status] = entry
    return out


EVENT_ERRORS = (400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 499, 503)
BATCH_ERRORS = (400, 401, 403, 404, 408, 413, 415, 422, 429, 499, 503)


def _accepted(event_type: str) -> dict[str, Any]:
    example = EXAMPLE_EVENTS[event_type]
    return {
        "event_id": example["event_id"],
        "status": "accepted",
        "stream": f"sluice-{event_type}",
        "partition_key": example.get("account_id") or example.get("policy_id"),
    }


_ACCEPTED_FT = _accepted("financial-transaction")

SINGLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "model": AcceptedModel,
        "description": "The broker acknowledged the event.",
        "content": {
            "application/json": {
                "examples": {
                    event_type: {"value": _accepted(event_type)} for event_type in EXAMPLE_EVENTS
                }
            }
        },
    },
    **error_responses(*EVENT_ERRORS),
}

_REJECTED_ITEM = {
    "index": 1,
    "event_id": "5b0c9f4e-8f2a-4c55-9a8e-2d1b6a7c9e02",
    "status": "rejected",
    "code": "validation_failed",
    "message": "the event does not match the financial-transaction schema (1 error(s))",
    "errors": [
        {
            "code": "invalid_enum",
            "message": "not one of PURCHASE, REFUND, ...",
            "field": "transaction_type",
        }
    ],
    "retryable": False,
}
_FAILED_ITEM = {
    "index": 1,
    "event_id": "5b0c9f4e-8f2a-4c55-9a8e-2d1b6a7c9e02",
    "status": "failed",
    "code": "publish_timeout",
    "message": "the broker did not acknowledge the event (_MSG_TIMED_OUT)",
    "errors": [],
    "retryable": True,
}
_ACCEPTED_ITEM = {"index": 0, **_ACCEPTED_FT}


def _batch(status: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {
        s: sum(1 for r in results if r["status"] == s) for s in ("accepted", "rejected", "failed")
    }
    return {"status": status, **counts, "results": results}


BATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "model": BatchModel,
        "description": "Every event was acknowledged by the broker.",
        "content": {
            "application/json": {
                "examples": {"accepted": {"value": _batch("accepted", [_ACCEPTED_ITEM])}}
            }
        },
    },
    207: {
        "model": BatchModel,
        "description": (
            "Some events were accepted: the others were rejected (`partially_accepted`) or "
            "not published (`retry_failed`: resend those with status `failed`; Retry-After is set)."
        ),
        "headers": RETRY_AFTER_HEADER,
        "content": {
            "application/json": {
                "examples": {
                    "partially_accepted": {
                        "value": _batch("partially_accepted", [_ACCEPTED_ITEM, _REJECTED_ITEM])
                    },
                    "retry_failed": {
                        "value": _batch("retry_failed", [_ACCEPTED_ITEM, _FAILED_ITEM])
                    },
                }
            }
        },
    },
    **error_responses(*BATCH_ERRORS),
}
# A batch whose events were all rejected / all failed answers with per-event results.
BATCH_RESPONSES[422] = {
    **BATCH_RESPONSES[422],
    "content": {
        "application/json": {
            "examples": {
                **BATCH_RESPONSES[422]["content"]["application/json"]["examples"],
                "all_rejected": {"value": _batch("rejected", [{**_REJECTED_ITEM, "index": 0}])},
                "invalid_batch": {
                    "value": _error(
                        422,
                        "invalid_batch",
                        'a batch is a JSON array of events or {"events": [...]}',
                        field="events",
                    )
                },
                "empty_batch": {
                    "value": _error(422, "empty_batch", "the batch holds no events", field="events")
                },
            }
        }
    },
}
BATCH_RESPONSES[503] = {
    **BATCH_RESPONSES[503],
    "content": {
        "application/json": {
            "examples": {
                **BATCH_RESPONSES[503]["content"]["application/json"]["examples"],
                "all_failed": {"value": _batch("retry_failed", [{**_FAILED_ITEM, "index": 0}])},
            }
        }
    },
}
BATCH_RESPONSES[403]["content"]["application/json"]["examples"]["all_tenant_forbidden"] = {
    "value": _batch(
        "rejected",
        [
            {
                **_REJECTED_ITEM,
                "index": 0,
                "code": "tenant_forbidden",
                "errors": [
                    {
                        "code": "tenant_forbidden",
                        "message": "tenant not allowed for this API key",
                        "field": "tenant_id",
                    }
                ],
            }
        ],
    )
}

SCHEMA_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": SchemaModel,
        "description": "The current schema, its version and a valid example event.",
        "content": {
            "application/json": {
                "examples": {
                    event_type: {
                        "value": {
                            "event_type": event_type,
                            "version": 2,
                            "schema_id": SCHEMA_IDS[(event_type, 2)],
                            "schema": {"type": "record", "name": "...", "fields": ["..."]},
                            "example": example,
                        }
                    }
                    for event_type, example in EXAMPLE_EVENTS.items()
                }
            }
        },
    },
    **error_responses(404),
}

HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": HealthModel,
        "description": "The process is alive.",
        "content": {"application/json": {"examples": {"ok": {"value": {"status": "ok"}}}}},
    },
}

READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": HealthModel,
        "description": "The broker answered and the streams exist.",
        "content": {
            "application/json": {
                "examples": {
                    "ready": {"value": {"status": "ready", "backend": "kafka", "detail": None}}
                }
            }
        },
    },
    503: {
        "model": HealthModel,
        "description": "The broker did not answer in time, or a stream is missing.",
        "headers": RETRY_AFTER_HEADER,
        "content": {
            "application/json": {
                "examples": {
                    "not_ready": {
                        "value": {
                            "status": "not_ready",
                            "backend": "kafka",
                            "detail": "no answer within 2.0 s",
                        }
                    }
                }
            }
        },
    },
}

METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus exposition text.",
        "content": {
            "text/plain": {
                "examples": {
                    "metrics": {
                        "value": "sluice_api_events_accepted_total"
                        '{event_type="financial-transaction"} 42.0\n'
                    }
                }
            }
        },
    },
}


# --------------------------------------------------------------------------- the document

SECURITY_SCHEMES: dict[str, Any] = {
    "ApiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The API key (`slk_<key_id>_<secret>`).",
    },
    "BearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "The API key as a bearer token: `Authorization: Bearer <key>`.",
    },
}
SECURITY: list[dict[str, list[str]]] = [{"ApiKeyHeader": []}, {"BearerAuth": []}]

IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes retries safe: the same key (per API key and event type) within "
        "SLUICE_API_IDEMPOTENCY_TTL_S gets the same answer and the event is published "
        "once. Without it, the event's `event_id` plays this part."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}

# What differs between the two event types in the examples of one route.
_TYPE_WORDS: dict[str, dict[str, str]] = {
    "financial-transaction": {},
    "insurance-claim": {
        "financial-transaction": "insurance-claim",
        "acc-42": "pol-77",
        "transaction_type": "line_of_business",
        "PURCHASE, REFUND, ...": "AUTO, HOME, ...",
        "merchant.country": "loss_location.country",
        "account_id": "policy_id",
    },
}


def _for_type(operation: dict[str, Any], event_type: str) -> dict[str, Any]:
    """``operation`` of a templated event route, made concrete for ``event_type``."""
    text = json.dumps(operation)
    for old, new in _TYPE_WORDS[event_type].items():
        text = text.replace(old, new)
    concrete: dict[str, Any] = json.loads(text)
    concrete["parameters"] = [
        p for p in concrete.get("parameters", []) if p.get("name") != "event_type"
    ]
    body = concrete.get("requestBody", {}).get("content", {}).get("application/json")
    if body is not None:
        # the request examples are keyed by event type: keep this type's only
        body["examples"] = {
            name: example
            for name, example in operation["requestBody"]["content"]["application/json"][
                "examples"
            ].items()
            if name == event_type
        }
    for status, response in concrete.get("responses", {}).items():
        for media in response.get("content", {}).values():
            examples = media.get("examples") or {}
            if set(examples) & set(_TYPE_WORDS):
                # examples keyed by event type: this type's (from the untouched original)
                original = operation["responses"][status]["content"]
                media["examples"] = {
                    name: example
                    for name, example in next(iter(original.values()))["examples"].items()
                    if name == event_type
                }
    concrete["operationId"] = f"{concrete.get('operationId', 'op')}_{event_type.replace('-', '_')}"
    return concrete


def finish(spec: dict[str, Any], event_types: Sequence[str]) -> dict[str, Any]:
    """The app's generated document made to match the answers.

    - one path per event type instead of ``{event_type}`` (each with its own examples:
      no financial example under the insurance routes);
    - ``securitySchemes`` for ``X-API-Key`` and Bearer, required on the event routes;
    - the ``Idempotency-Key`` header on the single-event routes;
    - batch ``403``/``422``/``503`` bodies are a batch result or the error model (``oneOf``).
    """
    components = spec.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    paths: dict[str, Any] = {}
    for path, operations in spec["paths"].items():
        if "{event_type}" not in path:
            paths[path] = operations
            continue
        for event_type in event_types:
            concrete_path = path.replace("{event_type}", event_type)
            paths[concrete_path] = {
                method: _for_type(operation, event_type) for method, operation in operations.items()
            }
            for method, operation in paths[concrete_path].items():
                if not concrete_path.startswith("/v1/events/"):
                    continue
                operation["security"] = SECURITY
                if method == "post" and not concrete_path.endswith("/batch"):
                    operation["parameters"] = [
                        *operation.get("parameters", []),
                        IDEMPOTENCY_KEY_PARAMETER,
                    ]
                if concrete_path.endswith("/batch"):
                    for status in ("403", "422", "503"):
                        media = operation["responses"][status]["content"]["application/json"]
                        media["schema"] = {
                            "oneOf": [
                                {"$ref": "#/components/schemas/BatchModel"},
                                {"$ref": "#/components/schemas/ErrorModel"},
                            ]
                        }
    spec["paths"] = paths
    return spec
