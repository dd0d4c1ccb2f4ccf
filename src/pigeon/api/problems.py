"""RFC 9457 problem details: every error the API answers with, and their stable codes.

Each problem's ``type`` is the relative URI ``/docs#problem-<code>``: it resolves against the
gateway that answered to the section of its own (offline) documentation that explains the code,
and it is stable, so clients may compare it as a string. ``code`` carries the same information
without the prefix and is what clients should branch on.
"""

from __future__ import annotations

import http
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions.http_exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    RequestEntityTooLarge,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec

from pigeon.domain.errors import PigeonError

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "/docs#problem-"

log = structlog.get_logger("pigeon.api")


@dataclass(frozen=True, slots=True)
class ProblemKind:
    """One documented error code: its HTTP status, a short title and when it happens."""

    status: int
    title: str
    description: str


#: Every ``code`` the API answers with. Codes are stable: add new ones, never rename.
PROBLEMS: dict[str, ProblemKind] = {
    # Request shape.
    "malformed_json": ProblemKind(400, "Malformed JSON", "The request body is not valid JSON."),
    "invalid_parameter": ProblemKind(
        400,
        "Invalid parameter",
        "A query, path or header parameter has a wrong type or value; `field` names it.",
    ),
    "invalid_request": ProblemKind(
        422,
        "Invalid request",
        "The body is valid JSON but not an object of the expected shape (or it is empty).",
    ),
    "unknown_field": ProblemKind(
        422, "Unknown field", "The body has a field this endpoint does not know; `field` names it."
    ),
    "invalid_field": ProblemKind(
        422, "Invalid field", "A field has the wrong type or an impossible value; see `field`."
    ),
    "missing_field": ProblemKind(
        422, "Missing field", "A required field is absent from the body; `field` names it."
    ),
    "unsupported_field": ProblemKind(
        422,
        "Unsupported field",
        "The field is part of the API but not supported by this version of Pigeon yet.",
    ),
    "payload_too_large": ProblemKind(
        413, "Payload too large", "The request body is larger than the gateway accepts."
    ),
    # Messages.
    "invalid_recipient": ProblemKind(
        422,
        "Invalid recipient",
        "`to` is not a valid, dialable phone number (give `country` for national formats).",
    ),
    "invalid_sender": ProblemKind(
        422,
        "Invalid sender",
        "`from` is not an alphanumeric id (up to 11 characters), a short code or an E.164 number.",
    ),
    "invalid_body": ProblemKind(422, "Invalid body", "The message text is empty."),
    "body_too_long": ProblemKind(
        422, "Body too long", "The message text needs more segments than allowed (10)."
    ),
    "invalid_country": ProblemKind(
        422, "Invalid country", "`country` is not an ISO 3166 alpha-2 region code such as `GB`."
    ),
    "invalid_send_at": ProblemKind(
        422,
        "Invalid send_at",
        "`send_at` lacks a time zone or is further ahead than scheduling allows (180 days).",
    ),
    "invalid_validity": ProblemKind(
        422, "Invalid validity", "`validity_seconds` is outside 60 seconds to 7 days."
    ),
    "invalid_url": ProblemKind(
        422, "Invalid URL", "The URL is not an absolute http(s) URL or is longer than 2048."
    ),
    "invalid_event_type": ProblemKind(
        422, "Invalid event type", "`events` lists a webhook event type Pigeon does not send."
    ),
    "idempotency_key_reused": ProblemKind(
        422,
        "Idempotency key reused",
        "The `Idempotency-Key` was already used with a different request body.",
    ),
    "invalid_idempotency_key": ProblemKind(
        422,
        "Invalid idempotency key",
        "The `Idempotency-Key` header is empty or longer than 255 characters.",
    ),
    # Access.
    "unauthorized": ProblemKind(
        401, "Unauthorized", "No API key, or not a valid one: send `Authorization: Bearer <key>`."
    ),
    "forbidden": ProblemKind(403, "Forbidden", "The API key may not do this."),
    "not_found": ProblemKind(
        404,
        "Not found",
        "No such route, or no such resource for this tenant (other tenants' ids included).",
    ),
    "connector_not_found": ProblemKind(
        404, "Connector not found", "No connector has this id (configured or with figures)."
    ),
    "method_not_allowed": ProblemKind(
        405, "Method not allowed", "The route exists but not with this HTTP method."
    ),
    "unsupported_media_type": ProblemKind(
        415, "Unsupported media type", "The body's Content-Type is not one this endpoint reads."
    ),
    # Connectors and routes (operator keys).
    "invalid_connector": ProblemKind(
        422,
        "Invalid connector",
        "The connector's id, type or options are not valid; `field` names the part at fault.",
    ),
    "invalid_price_list": ProblemKind(
        422, "Invalid price list", "The price list cannot be read; `detail` lists each bad line."
    ),
    "invalid_routes": ProblemKind(
        422,
        "Invalid routes",
        "The routing table is not valid (unknown keys or connectors, no or two defaults...).",
    ),
    "connector_exists": ProblemKind(409, "Connector exists", "A connector has this id already."),
    "connector_in_use": ProblemKind(
        409, "Connector in use", "A route still sends to this connector; change the routes first."
    ),
    # The gateway itself.
    "illegal_transition": ProblemKind(
        409, "Illegal transition", "The message cannot change to that status any more."
    ),
    "internal_error": ProblemKind(
        500, "Internal error", "A bug in Pigeon: the error was logged; retrying may help."
    ),
}


class Problem(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem details object (``application/problem+json``)."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None


class ApiError(PigeonError):
    """An error found by the HTTP adapter itself (request syntax, headers, parameters)."""

    def __init__(self, status: int, code: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail, code=code, field=field)
        self.status = status


@dataclass(frozen=True, slots=True)
class ProblemAnswer:
    """A rendered problem: what any HTTP layer sends back for an error.

    Litestar's exception handlers and the ``POST /v1/messages`` fast path
    (``pigeon.api.fast_accept``) both render errors through the functions below, so the two
    answer with the same bytes.
    """

    status: int
    #: The problem+json document.
    body: bytes
    #: Headers besides ``content-type`` (e.g. ``WWW-Authenticate``), in sending order.
    headers: dict[str, str] | None = None


def render_problem(
    status: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> ProblemAnswer:
    """The problem+json document for ``code``."""
    kind = PROBLEMS.get(code)
    title = kind.title if kind is not None else _phrase(status)
    body = Problem(
        type=TYPE_PREFIX + code, title=title, status=status, detail=detail, code=code, field=field
    )
    return ProblemAnswer(status, msgspec.json.encode(body), headers)


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    """A problem+json response for ``code``."""
    return problem_response(render_problem(status, code, detail, field=field, headers=headers))


def problem_response(answer: ProblemAnswer) -> Response[bytes]:
    """``answer`` as a Litestar response."""
    return Response(
        content=answer.body,
        status_code=answer.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=answer.headers,
    )


def _www_authenticate(authorization: str | None) -> dict[str, str]:
    # RFC 6750 section 3.1: no error attribute when the request carried no credentials.
    if authorization:
        return {"WWW-Authenticate": 'Bearer realm="pigeon", error="invalid_token"'}
    return {"WWW-Authenticate": 'Bearer realm="pigeon"'}


def pigeon_error_problem(
    exc: PigeonError, *, method: str, path: str, authorization: str | None
) -> ProblemAnswer:
    """Domain, service and adapter errors, with their own status, code and field.

    ``authorization`` is the request's ``Authorization`` header (its first value), which decides
    the ``WWW-Authenticate`` challenge of a 401.
    """
    status = exc.status if 400 <= exc.status <= 599 else 500
    if status >= 500:
        log.error("request_failed", method=method, path=path, code=exc.code, exc_info=exc)
    headers = _www_authenticate(authorization) if status == 401 else None
    return render_problem(status, exc.code, exc.detail, field=exc.field, headers=headers)


def http_exception_problem(
    exc: HTTPException, *, method: str, path: str, max_body_bytes: int | None
) -> ProblemAnswer:
    """Litestar's own errors: unknown routes, wrong methods, oversized bodies, bad parameters.

    ``max_body_bytes`` is the route's body limit, named in a 413's detail.
    """
    headers = dict(exc.headers or {})
    if isinstance(exc, NotFoundException):
        return render_problem(404, "not_found", f"No route {path}.", headers=headers)
    if isinstance(exc, MethodNotAllowedException):
        return render_problem(
            405, "method_not_allowed", f"{method} is not allowed on {path}.", headers=headers
        )
    if isinstance(exc, RequestEntityTooLarge):
        return render_problem(
            413, "payload_too_large", f"The request body is larger than {max_body_bytes} bytes."
        )
    if isinstance(exc, ValidationException):
        return _parameter_problem(exc)
    if exc.status_code >= 500:
        log.error("request_failed", method=method, path=path, exc_info=exc)
        return render_problem(500, "internal_error", "An unexpected error occurred.")
    return render_problem(
        exc.status_code, _status_code_name(exc.status_code), exc.detail, headers=headers
    )


def unexpected_problem(exc: Exception, *, method: str, path: str) -> ProblemAnswer:
    """Anything else is a bug: log it with its traceback and answer a bland 500."""
    log.error("request_crashed", method=method, path=path, exc_info=exc)
    return render_problem(
        500, "internal_error", "An unexpected error occurred; it has been logged."
    )


def error_problem(
    exc: Exception, *, method: str, path: str, authorization: str | None, max_body_bytes: int | None
) -> ProblemAnswer:
    """The problem for any exception, chosen as the app's exception handlers are (by class)."""
    if isinstance(exc, PigeonError):
        return pigeon_error_problem(exc, method=method, path=path, authorization=authorization)
    if isinstance(exc, HTTPException):
        return http_exception_problem(exc, method=method, path=path, max_body_bytes=max_body_bytes)
    return unexpected_problem(exc, method=method, path=path)


def handle_pigeon_error(request: Request[Any, Any, Any], exc: PigeonError) -> Response[bytes]:
    """Litestar's handler for ``PigeonError``: see ``pigeon_error_problem``."""
    return problem_response(
        pigeon_error_problem(
            exc,
            method=request.method,
            path=request.url.path,
            authorization=request.headers.get("authorization"),
        )
    )


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Litestar's handler for its ``HTTPException``s: see ``http_exception_problem``."""
    # Only a 413 names the limit; an unknown route has no route handler to ask.
    limit = (
        request.route_handler.resolve_request_max_body_size()
        if isinstance(exc, RequestEntityTooLarge)
        else None
    )
    return problem_response(
        http_exception_problem(
            exc, method=request.method, path=request.url.path, max_body_bytes=limit
        )
    )


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Litestar's handler for any other exception: see ``unexpected_problem``."""
    return problem_response(unexpected_problem(exc, method=request.method, path=request.url.path))


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _status_code_name(status: int) -> str:
    """A code for statuses we do not raise ourselves, e.g. ``unsupported_media_type``."""
    return _phrase(status).lower().replace(" ", "_").replace("-", "_")


def _parameter_problem(exc: ValidationException) -> ProblemAnswer:
    """A 400 ``invalid_parameter`` naming the first query, path or header parameter at fault."""
    field: str | None = None
    detail = "A parameter is invalid."
    if isinstance(exc.extra, list) and exc.extra and isinstance(exc.extra[0], dict):
        first = exc.extra[0]
        field = str(first["key"]) if first.get("key") else None
        message = str(first.get("message") or "invalid value")
        detail = f"{field}: {message}." if field else f"{message}."
    return render_problem(400, "invalid_parameter", detail, field=field)


#: What any route with a JSON body may answer before its use case runs.
BODY_PROBLEMS = (
    "malformed_json",
    "payload_too_large",
    "invalid_request",
    "unknown_field",
    "invalid_field",
    "missing_field",
)


def problem_responses(*codes: str) -> dict[int, ResponseSpec]:
    """OpenAPI descriptions of the problem responses a route may answer, by status."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(PROBLEMS[code].status, []).append(code)
    return {
        status: ResponseSpec(
            data_container=Problem,
            description="Problem codes: " + ", ".join(f"`{code}`" for code in listed) + ".",
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status, listed in sorted(by_status.items())
    }
