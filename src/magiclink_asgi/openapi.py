"""The HTTP API as an OpenAPI 3.1 document, served at ``/v1/openapi.json``.

Built from the route tables that serve the requests (``api.ROUTES``, ``landing.ROUTES``), so a
route cannot be served without being documented (a test checks both ways). The document says
what the handlers accept and answer, and ``tests/security/test_fuzzed_api.py`` holds them to it
with schemathesis: required fields are ``required``, a value the API refuses is outside its
schema, and every status an operation can answer (its errors included) is listed.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from magiclink_core import MAX_WAIT, VerificationStatus

from . import api, landing
from .cookies import CookieNames
from .errors import MethodNotAllowedError
from .http import Response, error_response, json_response
from .openapi_schemas import ANSWERS, BODIES, BODY_OPTIONAL, SCHEMAS
from .security import API

SERVED_ROUTES: list[tuple[str, str, str]] = [
    *((r.method, r.template, r.name) for r in api.ROUTES),
    *((r.method, r.template, r.name) for r in landing.ROUTES),
    ("GET", "/v1/openapi.json", "openapi"),
]
"""Every route served under the prefix, as (method, path template, operation id)."""

# -- who may call what -------------------------------------------------------------------------

_SIGNED_IN = {
    "get_me",
    "patch_me",
    "add_email_address",
    "prepare_email_address",
    "attempt_email_address",
    "get_email_address",
    "delete_email_address",
    "list_sessions",
    "revoke_session",
}
_CLIENT_MADE = {"get_client", "create_sign_up", "create_sign_in"}
"""Operations that make a client (and set its cookie) for a request that has none."""
_ACCOUNT_CHANGES = {"patch_me", "add_email_address", "delete_email_address"}
_WAITING = {"get_sign_up", "get_sign_in", "get_email_address"}
_LIMITED = {
    "create_sign_up",
    "create_sign_in",
    "prepare_sign_up",
    "prepare_sign_in",
    "prepare_email_address",
    "attempt_sign_up",
    "attempt_sign_in",
    "attempt_email_address",
    "confirm",
    "resend",
}
_SENDS_MAIL = {"prepare_sign_up", "prepare_sign_in", "prepare_email_address", "resend"}
_CODES = {"attempt_sign_up", "attempt_sign_in", "attempt_email_address"}

_STATUS_TEXT = {
    400: "invalid_request: a missing or malformed field, query or body",
    401: "unauthenticated: no live session",
    403: "csrf_failed (a state change from another origin), not_allowed (an app hook refused)"
    ", reverification_required (an account change needs a recent sign-in)",
    404: "not_found: no such record for this caller (someone else's reads the same)",
    409: "invalid_state (no longer in progress, already verified) or conflict",
    410: "expired: the code or link ran out of time",
    413: "payload_too_large: the body is over the server's limit",
    415: "unsupported_media_type: send application/json or form-encoded",
    422: "invalid_email_address, redirect_url_not_allowed, identifier_exists, "
    "email_code_incorrect (meta.attempts_left) or failed",
    429: "rate_limited: try again after Retry-After seconds (also meta.retry_after)",
    502: "mail_delivery_failed: the mail server did not take the email",
    503: "storage_unavailable: try again shortly",
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds until the limit lets the next request through",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _api_statuses(name: str, method: str, template: str) -> list[int]:
    """The error statuses an API operation can answer with."""
    statuses = {503}
    if method != "GET":
        statuses |= {403, 413}  # the CSRF check; a body over the limit
    if name in BODIES:
        statuses |= {400, 415}
    if name in _SIGNED_IN:
        statuses.add(401)
    if "{id}" in template or name in {"get_me", "patch_me"}:
        statuses.add(404)
    if name in _WAITING:
        statuses.add(400)  # a malformed ?wait=, ?version= or ?verification_status=
    if name.startswith(("prepare_", "attempt_", "touch_", "end_", "revoke_")) or name in {
        "patch_me",
        "delete_email_address",
    }:
        statuses.add(409)
    if name.startswith(("create_", "prepare_")) or name in {"add_email_address"} | _CODES:
        statuses.add(422)
    if name in _CODES:
        statuses.add(410)
    if name in _LIMITED:
        statuses.add(429)
    if name in _SENDS_MAIL:
        statuses.add(502)
    return sorted(statuses)


_LANDING_STATUSES: dict[str, dict[int, str]] = {
    "click": {
        303: "the click's result: to the attempt's redirect_url with __magiclink_status (the "
        "starting client's click), or to the confirmation page (the token moves into the "
        "landing cookie, unconsumed)",
        400: "no token, or not a token",
        503: "storage_unavailable",
    },
    "confirm_page": {
        200: "the confirmation form (?retry=wrong: with the tries left), or the done page",
        303: "consumed at once: to the attempt's redirect_url",
        400: "no link cookie: open the link from the email",
        403: "client_mismatch: the link works only on the device that asked",
        410: "the link expired (the page offers a resend)",
        422: "the link no longer works (used, replaced, or never valid)",
        503: "storage_unavailable",
    },
    "confirm": {
        200: "a repeat by the device that asked: the page saying it is signed in",
        303: "to the confirmation page (Post/Redirect/Get): with ?retry=wrong after a wrong "
        "code (the form again, with the tries left), without after a confirmation (the done "
        "page) or after a code the link did not survive (its last wrong one, or a link that "
        "died meanwhile: the page saying so); or, for the device that asked, to the attempt's "
        "redirect_url",
        400: "no link cookie, or a body that is not a form",
        403: "csrf_failed (the form's token is not the cookie's) or client_mismatch",
        409: "the link's attempt cannot be completed now",
        410: "the link expired",
        413: "the body is over the server's limit",
        415: "not form-encoded",
        422: "no code (the form again), or a tap without a code on a link that no longer works "
        "(used or replaced)",
        429: "too many wrong codes from this network (Retry-After)",
        503: "storage_unavailable",
    },
    "resend": {
        303: "to the sent page (Post/Redirect/Get): a fresh link went to the same address, or "
        "a newer one already works; to the confirmation page for a link that still works itself "
        "(nothing sent)",
        400: "no link cookie, or the link can no longer be renewed",
        403: "csrf_failed",
        413: "the body is over the server's limit",
        415: "not form-encoded",
        429: "too many emails asked for from this network (Retry-After)",
        503: "storage_unavailable",
    },
    "sent": {
        200: "check your email (where a resend lands)",
    },
}


def _error(status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": _STATUS_TEXT[status],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status == 429:
        answer["headers"] = _RETRY_AFTER
    return answer


def _page(description: str, status: int) -> dict[str, Any]:
    if 300 <= status < 400:
        return {
            "description": description,
            "headers": {"Location": {"schema": {"type": "string"}, "required": True}},
        }
    answer: dict[str, Any] = {
        "description": description,
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    if status == 429:
        answer["headers"] = _RETRY_AFTER
    return answer


def _body(name: str) -> dict[str, Any]:
    properties, required = BODIES[name]
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    content = {"application/x-www-form-urlencoded": {"schema": schema}}
    if name not in {"confirm", "resend"}:
        content["application/json"] = {"schema": schema}
    return {"required": name not in BODY_OPTIONAL, "content": content}


# a cookie's value as RFC 6265 spells it (cookie-octets: no space, '"', ',', ';' or '\\'), which
# is what a browser sends and the landing reads; anything else is no cookie at all
_COOKIE_VALUE = {"type": "string", "pattern": r"^[!#-+\--:<-\[\]-~]{1,256}$"}


def _parameters(name: str, template: str, names: CookieNames) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    if "{id}" in template:
        params.append(
            {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,128}$"},
            }
        )
    if name in _WAITING:
        params += [
            {
                "name": "wait",
                "in": "query",
                "description": "Hold the answer up to this many seconds, until the record "
                "changes from `version` (0 or absent: answer at once). An empty or malformed "
                "value is a 400.",
                "schema": {"type": "number", "minimum": 0, "maximum": MAX_WAIT.total_seconds()},
            },
            {
                "name": "version",
                "in": "query",
                "description": "The version the caller last saw (default: the current one).",
                "schema": {"type": "integer", "minimum": 0, "maximum": api.MAX_VERSION},
            },
            {
                "name": "verification_status",
                "in": "query",
                "description": "The status of the verification the caller last saw: any "
                "other is answered at once, and one over (such as `expired`) is then waited "
                "on too, for a new version (a link renewed from another device). Absent: a "
                "verification already over is answered at once.",
                "schema": {"type": "string", "enum": [s.value for s in VerificationStatus]},
            },
        ]
    if name == "click":
        params.append(
            {
                "name": "token",
                "in": "query",
                "required": True,
                "description": "The link's token, as emailed (mll1_ and 43 url-safe base64 "
                "characters, the last one canonical); anything else is a 400 page.",
                "schema": {
                    "type": "string",
                    "pattern": "^mll1_[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$",
                },
            }
        )
    if name in {"confirm_page", "confirm", "resend"}:
        params.append(
            {
                "name": names.landing,
                "in": "cookie",
                "required": True,
                "description": "The link's token, moved out of the URL by the landing "
                f"(HttpOnly, Path={{prefix}}/v1/verify, Max-Age {names.landing_max_age}).",
                "schema": _COOKIE_VALUE,
            }
        )
    if name in {"confirm", "resend"}:
        params.append(
            {
                "name": names.csrf,
                "in": "cookie",
                "required": True,
                "description": "The landing's CSRF cookie (double submit: the form's "
                "csrf_token must equal it).",
                "schema": _COOKIE_VALUE,
            }
        )
    return params


def _security(name: str) -> list[dict[str, list[str]]] | None:
    if name in _SIGNED_IN:
        return [{"sessionCookie": []}]
    if name in _CLIENT_MADE:
        return [{"clientCookie": []}, {}]
    if name in ANSWERS:
        return [{"clientCookie": []}, {"sessionCookie": []}]
    return None


def _operation(method: str, template: str, name: str, names: CookieNames) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": name, "responses": {}}
    params = _parameters(name, template, names)
    if params:
        op["parameters"] = params
    if name in BODIES:
        op["requestBody"] = _body(name)
    security = _security(name)
    if security is not None:
        op["security"] = security
    notes = []
    if method != "GET":
        notes.append(_CSRF)
    if name in _ACCOUNT_CHANGES:
        notes.append(
            "An account change: it needs a session created within the server's "
            "reverification window, else 403 reverification_required."
        )
    if notes:
        op["description"] = " ".join(notes)
    if name in ANSWERS:
        ref = {"$ref": f"#/components/schemas/{ANSWERS[name]}"}
        op["responses"]["200"] = {
            "description": ANSWERS[name],
            "content": {"application/json": {"schema": ref}},
        }
        for status in _api_statuses(name, method, template):
            op["responses"][str(status)] = _error(status)
    elif name == "openapi":
        op["responses"]["200"] = {
            "description": "this document",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
        op["security"] = []
    else:
        for status, description in _LANDING_STATUSES[name].items():
            op["responses"][str(status)] = _page(description, status)
        op["security"] = []
    return op


_CSRF = (
    "CSRF: a state-changing request must come from the app's own pages: a same-origin "
    "`Origin` header (the configured base_url's, or the request's own host) or "
    "`Sec-Fetch-Site: same-origin`; with neither header, only a JSON body (which no "
    "cross-site form can send) is accepted. Otherwise 403 csrf_failed."
)


def _description(names: CookieNames) -> str:
    return (
        "Passwordless email-link authentication (see docs/http-api.md).\n\n"
        f"Cookies: `{names.client}` (the browser; the first request that needs one gets it) "
        f"and `{names.session}` (the signed-in session), both HttpOnly and SameSite=Lax "
        "(Secure with the __Host- prefix over https). The link landing keeps the link's token "
        f"out of the URL in `{names.landing}` and a double-submit token in `{names.csrf}`, "
        "both scoped to the landing's path.\n\n"
        f"{_CSRF} The landing's forms also carry csrf_token, equal to the CSRF cookie.\n\n"
        "Errors are `{errors: [{code, message, long_message, meta}]}`; 429 carries "
        "Retry-After; a 5XX says only that the service is unavailable."
    )


def _security_schemes(names: CookieNames) -> dict[str, Any]:
    return {
        "clientCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": names.client,
            "description": "The browser's client token (HttpOnly); set by the API on first "
            f"use, for {names.client_max_age} seconds.",
        },
        "sessionCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": names.session,
            "description": "The session token (HttpOnly); set when a sign-in or sign-up "
            "completes on this browser, or by POST .../sessions/{id}/touch.",
        },
    }


_DEFAULT_NAMES = CookieNames(
    secure=False,
    client="magiclink_client",
    session="magiclink_session",
    landing="magiclink_link",
    csrf="magiclink_csrf",
    sent_on="magiclink_sent_on",
    client_max_age=0,
    session_max_age=0,
    landing_max_age=0,
)


@cache
def openapi_document(prefix: str, names: CookieNames = _DEFAULT_NAMES) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the routes served under ``prefix`` with the cookies
    ``names`` (the middleware's)."""
    paths: dict[str, dict[str, Any]] = {}
    for method, template, name in SERVED_ROUTES:
        paths.setdefault(prefix + template, {})[method.lower()] = _operation(
            method, template, name, names
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": "magiclink HTTP API", "version": "1", "description": _description(names)},
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": _security_schemes(names)},
    }


@cache
def _encoded(prefix: str, names: CookieNames) -> bytes:
    return json.dumps(openapi_document(prefix, names), separators=(",", ":")).encode()


def openapi_response(prefix: str, method: str, names: CookieNames = _DEFAULT_NAMES) -> Response:
    """``GET /v1/openapi.json``."""
    if method not in {"GET", "HEAD"}:
        return error_response(MethodNotAllowedError(method, ["GET"]))
    response = json_response({})
    response.body = _encoded(prefix, names)
    return response.defaults(API)
