"""The FastAPI application: routes, error model, auth, limits, lifespan.

:func:`create_app` builds the app without touching the network. The publisher is made
at startup (lifespan) or, where no lifespan runs (Lambda), on the first request; it is
flushed and closed at shutdown. Every answer other than success uses the error model of
:class:`~ingest_api.models.ErrorModel`; no stack trace ever reaches a client.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ingest_api import openapi
from ingest_api.auth import KeyStore, Principal, presented_key
from ingest_api.base import AcceptedLog, ReadinessProbe, batch_verdict
from ingest_api.body import (
    check_content_encoding,
    check_content_length,
    check_content_type,
    dump_json,
    gunzip_limited,
    parse_json,
    read_limited,
)
from ingest_api.config import ApiSettings
from ingest_api.examples import example_event
from ingest_api.exceptions import (
    ApiError,
    BrokerUnavailable,
    ClientClosedRequest,
    FieldIssue,
    Forbidden,
    IdempotencyConflict,
    IdempotencyInProgress,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    StoreUnavailable,
    Unauthenticated,
    Unprocessable,
)
from ingest_api.idempotency import IdempotencyStore
from ingest_api.metrics import ApiMetrics, Message, Receive, Scope, Send, bounded_method
from ingest_api.models import EventOutcome, issue_json
from ingest_api.ratelimit import LeasedRateLimiter, RateLimiter
from ingest_api.service import (
    IDEMPOTENCY_CONFLICT,
    IDEMPOTENCY_IN_PROGRESS,
    TENANT_FORBIDDEN,
    IngestService,
    Masker,
    PublisherHolder,
)
from producers.base import Publisher
from schemas.pii import excerpt
from schemas.rules import PlausibilityWindow
from sluice.config import EventType, StreamSettings

logger = logging.getLogger(__name__)

JSON = "application/json"
EVENT_TYPES: tuple[str, ...] = tuple(e.value for e in EventType)
_KNOWN_TYPES = frozenset(EVENT_TYPES)
MAX_IDEMPOTENCY_KEY = 255
#: Status counted (and answered, if anyone is left) when the client went away mid-request.
CLIENT_CLOSED_REQUEST = 499


# --------------------------------------------------------------------------- responses


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response rendered once (no response-model round trip)."""
    return Response(dump_json(body), status_code=status, media_type=JSON, headers=headers)


def error_body(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    errors: Sequence[FieldIssue] = (),
    retryable: bool = False,
    errors_omitted: int = 0,
) -> dict[str, Any]:
    """The error model."""
    if field is None and len(errors) == 1 and not errors_omitted:
        field = errors[0].field
    return {
        "status": status,
        "code": code,
        "message": message,
        "field": field,
        "errors": [issue_json(e) for e in errors],
        "errors_omitted": errors_omitted,
        "retryable": retryable,
    }


def error_response(exc: ApiError) -> Response:
    """The answer for an :class:`ApiError`."""
    headers = dict(exc.headers) if exc.headers else {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    body = error_body(
        exc.status,
        exc.code,
        exc.message,
        field=exc.field,
        errors=exc.errors,
        retryable=exc.retryable,
        errors_omitted=exc.errors_omitted,
    )
    return json_response(exc.status, body, headers)


def outcome_error(outcome: EventOutcome, retry_after: int) -> ApiError:
    """The error for a single event that was not accepted."""
    message = outcome.message or "the event was not accepted"
    if outcome.code == IDEMPOTENCY_IN_PROGRESS:
        return IdempotencyInProgress(message, code=outcome.code, retry_after=retry_after)
    if outcome.status == "failed":
        return BrokerUnavailable(message, code=outcome.code, retry_after=retry_after)
    if outcome.code == TENANT_FORBIDDEN:
        return Forbidden(message, code=outcome.code, errors=outcome.errors)
    if outcome.code == IDEMPOTENCY_CONFLICT:
        return IdempotencyConflict(message, code=outcome.code)
    return Unprocessable(
        message, code=outcome.code, errors=outcome.errors, errors_omitted=outcome.errors_omitted
    )


# --------------------------------------------------------------------------- headers

_HEADERS_KEY = "sluice.headers"


def header(request: Request, name: str) -> str | None:
    """The first value of header ``name`` (lower case), like ``request.headers.get``.

    The request's headers are indexed once (ASGI header names are lower case) instead
    of scanned for every look-up.
    """
    scope = request.scope
    index: dict[bytes, bytes] | None = scope.get(_HEADERS_KEY)
    if index is None:
        index = {}
        for key, value in scope["headers"]:
            index.setdefault(key, value)
        scope[_HEADERS_KEY] = index
    value = index.get(name.encode("latin-1"))
    return None if value is None else value.decode("latin-1")


# --------------------------------------------------------------------------- context


class ApiContext:
    """Everything the routes share: settings, keys, limiter, service, probe, metrics."""

    def __init__(
        self,
        settings: ApiSettings,
        streams: StreamSettings,
        keys: KeyStore,
        service: IngestService,
        probe: ReadinessProbe | None,
        probe_factory: Callable[[], ReadinessProbe],
        metrics: ApiMetrics,
        clock: Callable[[], float],
        limiter: RateLimiter | LeasedRateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.streams = streams
        self.keys = keys
        self.service = service
        self._probe = probe
        self._probe_factory = probe_factory
        self.metrics = metrics
        self.clock = clock
        self.limiter = limiter or RateLimiter(burst_s=settings.api_rate_limit_burst_s)

    @property
    def probe(self) -> ReadinessProbe:
        """The readiness probe, made on first use."""
        if self._probe is None:
            self._probe = self._probe_factory()
        return self._probe

    async def close(self) -> None:
        """Let publishes in flight finish, flush and close the publisher, release the probe."""
        await self.service.drain(self.settings.api_publish_timeout_s)
        await self.service.publishers.close(self.settings.api_publish_timeout_s)
        await self.service.store.close()
        if self._probe is not None:
            await self._probe.close()
        if self.service.accepted_log is not None:
            self.service.accepted_log.close()

    def event_type(self, value: str) -> str:
        """The event type of the URL, or 404."""
        if value not in _KNOWN_TYPES:
            raise NotFound(
                f"unknown event type {excerpt(value, 40)}; known: {', '.join(EVENT_TYPES)}",
                code="unknown_event_type",
            )
        return value

    def authenticate(self, request: Request) -> Principal:
        """The principal of the request's API key, or 401.

        Every credential presented must hold: with both ``X-API-Key`` and
        ``Authorization``, both must be valid and name the same key (a wrong one is
        never ignored in favour of the other).
        """
        authorization = header(request, "authorization")
        x_api_key = header(request, "x-api-key")
        key = presented_key(authorization, x_api_key)
        if key is None:
            if authorization is None and x_api_key is None:
                raise Unauthenticated(
                    "send an API key in 'Authorization: Bearer <key>' or 'X-API-Key'",
                    code="unauthenticated",
                )
            raise Unauthenticated("the API key is not valid", code="invalid_api_key")
        principal = self.keys.authenticate(key)
        if principal is None:
            raise Unauthenticated("the API key is not valid", code="invalid_api_key")
        if x_api_key is not None and authorization is not None:
            bearer = presented_key(authorization, None)
            if (
                bearer is None
                or self.keys.authenticate(bearer) != principal
                or self.keys.authenticate(x_api_key.strip()) != principal
            ):
                raise Unauthenticated(
                    "X-API-Key and Authorization must both hold the same valid key",
                    code="invalid_api_key",
                )
        return principal

    async def admit(self, request: Request, raw_type: str) -> tuple[str, Principal]:
        """Auth (401), event type (404), permission (403) and rate limit (429)."""
        principal = self.authenticate(request)
        event_type = self.event_type(raw_type)
        if not principal.may_send_type(event_type):
            raise Forbidden(
                f"this API key may not send {event_type} events", code="event_type_forbidden"
            )
        try:
            decision = await self.limiter.acquire(
                principal.key_id, principal.rate_limit, self.clock()
            )
        except StoreUnavailable as exc:
            logger.warning("rate limit store unavailable: %s", exc)
            raise BrokerUnavailable(
                "the rate limit cannot be checked right now",
                code="store_unavailable",
                retry_after=self.settings.api_retry_after_s,
            ) from None
        if not decision.allowed:
            raise RateLimited(
                f"rate limit of {principal.rate_limit:g} requests/s exceeded; "
                f"retry after {decision.retry_after_header} s",
                retry_after=int(decision.retry_after_header),
            )
        return event_type, principal

    async def read_json(self, request: Request) -> Any:
        """The body as JSON: 415, 413 (before parsing), 408 (slow body) and 400 checks.

        The whole body must arrive within ``api_body_read_timeout_s``; a client that
        goes away meanwhile gets :class:`ClientClosedRequest` (499, nothing logged as
        a server error). A gzip body is decompressed within its bounds.
        """
        settings = self.settings
        check_content_type(header(request, "content-type"))
        encoding = check_content_encoding(header(request, "content-encoding"))
        limit = settings.api_max_body_bytes
        check_content_length(header(request, "content-length"), limit)
        try:
            async with asyncio.timeout(settings.api_body_read_timeout_s):
                body = await read_limited(request.stream(), limit)
        except TimeoutError:
            raise RequestTimeout(
                f"the body did not arrive within {settings.api_body_read_timeout_s:g} s",
                code="body_timeout",
            ) from None
        except ClientDisconnect:
            raise ClientClosedRequest(
                "the client closed the connection before the body arrived"
            ) from None
        if encoding == "gzip":
            body = gunzip_limited(
                body, settings.api_max_decompressed_bytes, settings.api_max_gzip_ratio
            )
        return parse_json(body)

    def idempotency_key(self, request: Request) -> str | None:
        """The ``Idempotency-Key`` header, checked (400 when unusable)."""
        value = header(request, "idempotency-key")
        if value is None:
            return None
        if (
            not 0 < len(value) <= MAX_IDEMPOTENCY_KEY
            or not value.isascii()
            or not value.isprintable()
        ):
            raise MalformedBody(
                f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters",
                code="invalid_idempotency_key",
            )
        return value

    def count_rejection(self, raw_type: str, exc: ApiError) -> None:
        """Count a request refused before its events were looked at."""
        event_type = raw_type if raw_type in _KNOWN_TYPES else "unknown"
        self.metrics.reject(event_type, exc.code)


# --------------------------------------------------------------------------- routing


class RawRoute(APIRoute):
    """A route whose endpoint takes the :class:`Request` and returns a :class:`Response`.

    The endpoint is called directly: no dependency solving, no response-model
    serialisation on the hot path. Path parameters are read from
    ``request.path_params``; the OpenAPI document comes from the decorators'
    ``responses=`` and ``openapi_extra`` (which declare the parameters).
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return cast(Callable[[Request], Coroutine[Any, Any, Response]], self.endpoint)


EVENT_TYPE_PARAMETER: dict[str, Any] = {
    "parameters": [
        {
            "name": "event_type",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "enum": list(EVENT_TYPES)},
            "description": "The event type.",
        }
    ]
}


# --------------------------------------------------------------------------- safety net


Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]

SINGLE_TEMPLATE = "/v1/events/{event_type}"
BATCH_TEMPLATE = "/v1/events/{event_type}/batch"


class FastPaths:
    """The event endpoints, served by :class:`EdgeMiddleware` without the router.

    The two POST routes carry nearly all traffic; serving them here skips Starlette's
    routing and FastAPI's per-request machinery. The same endpoints stay declared on
    the app for the OpenAPI document (and serve any request this does not take).
    """

    def __init__(self) -> None:
        self.single: Endpoint | None = None
        self.batch: Endpoint | None = None

    def match(self, scope: Scope) -> tuple[Endpoint, str, str] | None:
        """The endpoint, route template and event type of a POST to an event route."""
        if scope["method"] != "POST":
            return None
        path: str = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "v1" and parts[2] == "events" and self.single:
            return self.single, SINGLE_TEMPLATE, parts[3]
        if (
            len(parts) == 5
            and parts[1] == "v1"
            and parts[2] == "events"
            and parts[4] == "batch"
            and self.batch
        ):
            return self.batch, BATCH_TEMPLATE, parts[3]
        return None


class EdgeMiddleware:
    """Counts every request (route template, status), tracks in-flight, and is the last line.

    It also serves the event routes directly (:class:`FastPaths`). Every known failure
    is mapped where it happens; an exception no handler mapped still yields the error
    model (never a stack trace) with a retryable 503, since the event was not accepted.
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Any],
        metrics: ApiMetrics,
        retry_after: int,
        fast_paths: FastPaths | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.retry_after = retry_after
        self.fast_paths = fast_paths or FastPaths()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.serve(scope, receive, send, self.fast_paths.match(scope))

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        fast: tuple[Endpoint, str, str] | None,
    ) -> None:
        """Serve an HTTP request: by the ``fast`` endpoint when given, else by the app."""
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        gauge = self.metrics.in_flight
        gauge.inc()
        try:
            if fast is None:
                await self.app(scope, receive, send_wrapper)
            else:
                endpoint, template, event_type = fast
                scope["path_params"] = {"event_type": event_type}
                scope["route_template"] = template
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send_wrapper)
        except ClientDisconnect:
            # The client went away: not a server error, nobody is left to answer.
            if not status:
                status = CLIENT_CLOSED_REQUEST
        except Exception:
            logger.exception(
                "unhandled error on %s %s",
                bounded_method(scope.get("method") or ""),
                excerpt(scope.get("path") or "", 80),
            )
            if status:
                raise
            status = 503
            await self._unavailable(send)
        finally:
            gauge.dec()
            label = str(
                scope.get("route_template") or getattr(scope.get("route"), "path", "unmatched")
            )
            self.metrics.request(bounded_method(scope["method"]), label, status)

    async def _unavailable(self, send: Send) -> None:
        body = dump_json(
            error_body(
                503,
                "unavailable",
                "the request could not be served; nothing was accepted",
                retryable=True,
            )
        )
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(self.retry_after).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class IngestApp(FastAPI):
    """The FastAPI app whose event routes are served before the framework's middleware.

    A POST to an event route goes straight to :class:`EdgeMiddleware` (which counts it,
    tracks it in flight and is the last line against unhandled errors) and the route's
    endpoint; everything else takes the whole FastAPI stack, with the same
    ``EdgeMiddleware`` installed inside it.
    """

    edge: EdgeMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        edge = self.edge
        if edge is not None and scope["type"] == "http" and not self.root_path:
            fast = edge.fast_paths.match(scope)
            if fast is not None:
                scope["app"] = self
                await edge.serve(scope, receive, send, fast)
                return
        await super().__call__(scope, receive, send)


# --------------------------------------------------------------------------- factory


def _default_probe(streams: StreamSettings) -> ReadinessProbe:
    if streams.stream_backend.value == "kinesis":
        from ingest_api.kinesis import KinesisProbe

        return KinesisProbe()
    from ingest_api.kafka import KafkaProbe

    return KafkaProbe()


def _default_masker() -> Masker:
    from ingest_api.pii import EdgeMasker

    return EdgeMasker.from_settings()


def create_app(
    settings: ApiSettings | None = None,
    publisher: Publisher | None = None,
    *,
    stream_settings: StreamSettings | None = None,
    key_store: KeyStore | None = None,
    readiness_probe: ReadinessProbe | None = None,
    masker: Masker | None = None,
    accepted_log: AcceptedLog | None = None,
    idempotency_store: IdempotencyStore | None = None,
    rate_limiter: RateLimiter | LeasedRateLimiter | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """Build the ingest API. No network call is made here.

    Args:
        settings: API settings (``SLUICE_API_*``); read from the environment when omitted.
        publisher: the publisher to use (tests: ``MemoryPublisher``); when omitted,
            ``producers.factory.create_publisher()`` builds one at startup.
        stream_settings: backend and stream names; from the environment when omitted.
        key_store: API keys; from settings when omitted.
        readiness_probe: how /readyz asks the broker; by backend when omitted.
        masker: PII masking of validated events; ``schemas.pii`` with
            ``SLUICE_PII_HMAC_KEY`` when omitted.
        accepted_log: where accepted events are recorded (tests: ``MemoryAcceptedLog``);
            from ``SLUICE_API_ACCEPTED_LOG`` when omitted (the ``file`` log opens its
            file here).
        idempotency_store: where accepted answers are shared between processes (tests:
            ``MemoryIdempotencyStore``); from ``SLUICE_API_IDEMPOTENCY_STORE`` when omitted.
        rate_limiter: per-key limits; from ``SLUICE_API_RATE_LIMIT_STORE`` when omitted.
        clock: monotonic seconds (rate limits, idempotency TTL).

    Raises:
        ConfigurationError: the accepted log is misconfigured (``file`` without a
            path, or a path that cannot be opened).
    """
    settings = settings or ApiSettings()
    streams = stream_settings or StreamSettings()
    keys = key_store if key_store is not None else KeyStore.from_settings(settings)
    if not len(keys):
        logger.warning(
            "no API keys configured (SLUICE_API_KEY, SLUICE_API_KEYS_FILE, SLUICE_API_KEYS_JSON):"
            " every event request will be answered 401"
        )
    metrics = ApiMetrics()

    def make_publisher() -> Publisher:
        from producers.factory import create_publisher

        return create_publisher(stream_settings=streams)

    from ingest_api.factory import (
        create_accepted_log,
        create_idempotency_store,
        create_rate_limiter,
    )

    if accepted_log is None:
        accepted_log = create_accepted_log(settings)
    if idempotency_store is None:
        idempotency_store = create_idempotency_store(settings, clock)
    if rate_limiter is None:
        rate_limiter = create_rate_limiter(settings)
    holder = PublisherHolder(make_publisher, publisher)
    service = IngestService(
        settings,
        streams,
        holder,
        metrics,
        masker or _default_masker(),
        accepted_log=accepted_log,
        clock=clock,
        store=idempotency_store,
        window=PlausibilityWindow.from_settings(),
    )
    ctx = ApiContext(
        settings,
        streams,
        keys,
        service,
        readiness_probe,
        lambda: _default_probe(streams),
        metrics,
        clock,
        rate_limiter,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every schema version a client may send must have its registry id: fail here,
        # naming the versions missing, rather than on the first event of one.
        service.registry.require()
        holder.get()  # builds the client objects; connections open on first publish
        try:
            yield
        finally:
            await ctx.close()

    app = IngestApp(
        title="Sluice ingest API",
        version="1.0.0",
        description=(
            "Validated financial and insurance events onto Kafka (MSK) or Kinesis. "
            "A 202 is sent only after the broker acknowledged the write. Errors share "
            "one model: `status`, `code`, `message`, `field`, `errors[]`, `retryable`."
        ),
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.ctx = ctx
    app.router.route_class = RawRoute
    retry_after = settings.api_retry_after_s

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            return error_response(
                MethodNotAllowed(
                    f"{bounded_method(request.method)} is not allowed here",
                    headers=dict(exc.headers or {}),
                )
            )
        if exc.status_code == 404:
            return error_response(NotFound(f"no route for {excerpt(request.url.path, 80)}"))
        return json_response(
            exc.status_code, error_body(exc.status_code, "http_error", str(exc.detail))
        )

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        issues = [
            FieldIssue(
                str(e.get("type", "invalid")),
                str(e.get("msg", "invalid")),
                ".".join(str(p) for p in e.get("loc", ())[1:]) or None,
            )
            for e in exc.errors()
        ]
        return error_response(Unprocessable("the request is invalid", errors=issues))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    fast_paths = FastPaths()
    app.add_middleware(
        EdgeMiddleware, metrics=metrics, retry_after=retry_after, fast_paths=fast_paths
    )

    event_body = {
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": {"type": "object", "additionalProperties": True},
                    "examples": {
                        et: {"summary": f"a {et} event", "value": example_event(et)}
                        for et in EVENT_TYPES
                    },
                }
            },
        }
    }
    batch_body = {
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": {
                        "oneOf": [
                            {"type": "array", "items": {"type": "object"}},
                            {
                                "type": "object",
                                "properties": {
                                    "events": {"type": "array", "items": {"type": "object"}}
                                },
                                "required": ["events"],
                            },
                        ]
                    },
                    "examples": {
                        et: {
                            "summary": f"two {et} events",
                            "value": {"events": [example_event(et)]},
                        }
                        for et in EVENT_TYPES
                    },
                }
            },
        }
    }

    @app.post(
        SINGLE_TEMPLATE,
        status_code=202,
        responses=openapi.SINGLE_RESPONSES,
        response_model=None,
        openapi_extra={**event_body, **EVENT_TYPE_PARAMETER},
        summary="Send one event",
        tags=["events"],
    )
    async def post_event(request: Request) -> Response:
        """Validate one event, mask its PII and publish it; 202 once the broker acknowledged.

        Send `Idempotency-Key` (or rely on `event_id`) to make retries safe: the same key
        within the window gets the same answer and the event is published once.
        """
        event_type = str(request.path_params["event_type"])
        try:
            et, principal = await ctx.admit(request, event_type)
            idempotency_key = ctx.idempotency_key(request)
            event = await ctx.read_json(request)
        except ApiError as exc:
            ctx.count_rejection(event_type, exc)
            return error_response(exc)
        outcome = await service.ingest_one(et, event, principal, idempotency_key)
        if outcome.accepted:
            return json_response(202, outcome.to_json())
        return error_response(outcome_error(outcome, retry_after))

    @app.post(
        BATCH_TEMPLATE,
        status_code=202,
        responses=openapi.BATCH_RESPONSES,
        response_model=None,
        openapi_extra={**batch_body, **EVENT_TYPE_PARAMETER},
        summary="Send a batch of events",
        tags=["events"],
    )
    async def post_batch(request: Request) -> Response:
        """Validate every event, publish the valid ones; a result per event, in order.

        The body is a JSON array of events or `{"events": [...]}`. Invalid events never
        block valid ones. When some events could not be published, their result is
        `failed` with `retryable: true` and the overall status is `retry_failed`.
        """
        event_type = str(request.path_params["event_type"])
        try:
            et, principal = await ctx.admit(request, event_type)
            body = await ctx.read_json(request)
            events = _batch_events(body, settings.api_max_batch_events)
        except ApiError as exc:
            ctx.count_rejection(event_type, exc)
            return error_response(exc)
        outcomes = await service.ingest_batch(et, events, principal)
        verdict = batch_verdict(outcomes, forbidden_code=TENANT_FORBIDDEN)
        results = []
        for index, outcome in enumerate(outcomes):
            item = outcome.to_json()
            item["index"] = index
            results.append(item)
        payload = {
            "status": verdict.status,
            "accepted": verdict.accepted,
            "rejected": verdict.rejected,
            "failed": verdict.failed,
            "results": results,
        }
        headers = {"Retry-After": str(retry_after)} if verdict.retry_after else None
        return json_response(verdict.http_status, payload, headers)

    fast_paths.single, fast_paths.batch = post_event, post_batch
    app.edge = EdgeMiddleware(
        app.router, metrics=metrics, retry_after=retry_after, fast_paths=fast_paths
    )

    @app.get(
        "/v1/schemas/{event_type}",
        responses=openapi.SCHEMA_RESPONSES,
        response_model=None,
        openapi_extra=EVENT_TYPE_PARAMETER,
        summary="The current schema of an event type",
        tags=["schemas"],
    )
    async def get_schema(request: Request) -> Response:
        """The current Avro schema, its version, its schema id and a valid example event."""
        try:
            et = ctx.event_type(str(request.path_params["event_type"]))
        except ApiError as exc:
            return error_response(exc)
        from schemas import catalogue

        latest = catalogue().latest(et)
        body = {
            "event_type": et,
            "version": latest.version,
            "schema_id": latest.schema_id,
            "schema": latest.schema,
            "example": example_event(et),
        }
        return json_response(200, body)

    @app.get("/healthz", responses=openapi.HEALTH_RESPONSES, response_model=None, tags=["ops"])
    async def healthz(request: Request) -> Response:
        """Liveness: the process answers."""
        return json_response(200, {"status": "ok"})

    @app.get("/readyz", responses=openapi.READY_RESPONSES, response_model=None, tags=["ops"])
    async def readyz(request: Request) -> Response:
        """Readiness: the broker answers within the bound and the event streams exist."""
        probe = ctx.probe
        names = [streams.name_for(et) for et in EVENT_TYPES]
        timeout = settings.api_ready_timeout_s
        result = await probe.check(names, timeout)
        body = {
            "status": "ready" if result.ready else "not_ready",
            "backend": result.backend,
            "detail": result.detail,
        }
        if result.ready:
            return json_response(200, body)
        return json_response(503, body, {"Retry-After": str(max(1, math.ceil(timeout)))})

    @app.get("/metrics", responses=openapi.METRICS_RESPONSES, response_model=None, tags=["ops"])
    async def metrics_route(request: Request) -> Response:
        """Prometheus metrics of this process."""
        return Response(metrics.render(), media_type=metrics.content_type)

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = openapi.finish(spec, EVENT_TYPES)
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
    return app


def _batch_events(body: Any, limit: int) -> list[Any]:
    """The events of a batch body: a JSON array or ``{"events": [...]}``."""
    events = body.get("events") if isinstance(body, dict) else body
    if not isinstance(events, list):
        raise Unprocessable(
            'a batch is a JSON array of events or {"events": [...]}',
            code="invalid_batch",
            field="events",
        )
    if not events:
        raise Unprocessable("the batch holds no events", code="empty_batch", field="events")
    if len(events) > limit:
        raise PayloadTooLarge(
            f"the batch holds {len(events)} events; at most {limit} are allowed",
            code="too_many_events",
            field="events",
        )
    return events
