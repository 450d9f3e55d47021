"""The HTTP API as an OpenAPI 3.1 document, served at ``/v1/openapi.json``.

Built from the route tables that serve the requests (``api.ROUTES``, ``landing.ROUTES``), so a
route cannot be served without being documented (a test checks both ways).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from magiclink_core import FailureReason

from . import api, landing
from .errors import MethodNotAllowedError
from .http import Response, error_response, json_response
from .security import API

SERVED_ROUTES: list[tuple[str, str, str]] = [
    *((r.method, r.template, r.name) for r in api.ROUTES),
    *((r.method, r.template, r.name) for r in landing.ROUTES),
    ("GET", "/v1/openapi.json", "openapi"),
]
"""Every route served under the prefix, as (method, path template, operation id)."""

_NULLABLE_STR = {"type": ["string", "null"]}
_MS = {"type": "integer", "description": "milliseconds since the Unix epoch"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["errors"],
        "properties": {
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["code", "message", "long_message", "meta"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "long_message": {"type": "string"},
                        "meta": {"type": "object"},
                    },
                },
            }
        },
    },
    "Verification": {
        "type": "object",
        "properties": {
            "object": {"const": "verification"},
            "strategy": {"enum": ["email_link", "email_code"]},
            "supported_strategies": {
                "type": "array",
                "items": {"enum": ["email_link", "email_code"]},
            },
            "status": {"enum": ["unverified", "verified", "expired", "failed", "client_mismatch"]},
            "expire_at": _MS,
            "verified_at_client": _NULLABLE_STR,
            "verified_from_the_same_client": {"type": "boolean"},
            "confirmation_code": {"type": "string"},
            "redirect_url": {"type": "string"},
            "failure_reason": {
                "type": ["string", "null"],
                "enum": [*[r.value for r in FailureReason], None],
            },
        },
    },
    "SignIn": {
        "type": "object",
        "properties": {
            "object": {"const": "sign_in"},
            "id": {"type": "string"},
            "status": {"enum": ["needs_first_factor", "complete", "abandoned"]},
            "identifier": {"type": "string"},
            "supported_first_factors": {"type": "array", "items": {"type": "object"}},
            "first_factor_verification": {
                "oneOf": [{"$ref": "#/components/schemas/Verification"}, {"type": "null"}]
            },
            "created_session_id": _NULLABLE_STR,
            "version": {"type": "integer"},
        },
    },
    "SignUp": {
        "type": "object",
        "properties": {
            "object": {"const": "sign_up"},
            "id": {"type": "string"},
            "status": {"enum": ["missing_requirements", "complete", "abandoned"]},
            "email_address": {"type": "string"},
            "verifications": {"type": "object"},
            "created_user_id": _NULLABLE_STR,
            "created_session_id": _NULLABLE_STR,
            "version": {"type": "integer"},
        },
    },
    "EmailAddress": {
        "type": "object",
        "properties": {
            "object": {"const": "email_address"},
            "id": {"type": "string"},
            "email_address": {"type": "string"},
            "verified": {"type": "boolean"},
            "primary": {"type": "boolean"},
            "deleted": {"type": "boolean"},
            "version": {"type": "integer"},
        },
    },
    "Session": {
        "type": "object",
        "properties": {
            "object": {"const": "session"},
            "id": {"type": "string"},
            "status": {"enum": ["active", "ended", "revoked", "expired"]},
            "user_id": {"type": "string"},
            "last_active_at": _MS,
            "expire_at": _MS,
            "user_agent": {"type": "string"},
            "ip_address": {"type": "string"},
            "current": {"type": "boolean"},
        },
    },
    "SessionList": {
        "type": "object",
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}},
        },
    },
    "User": {
        "type": "object",
        "properties": {
            "object": {"const": "user"},
            "id": {"type": "string"},
            "primary_email_address_id": _NULLABLE_STR,
            "email_addresses": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/EmailAddress"},
            },
            "created_at": _MS,
        },
    },
    "Client": {
        "type": "object",
        "properties": {
            "object": {"const": "client"},
            "id": {"type": "string"},
            "sessions": {"type": "array", "items": {"$ref": "#/components/schemas/Session"}},
            "sign_in": {"oneOf": [{"$ref": "#/components/schemas/SignIn"}, {"type": "null"}]},
            "sign_up": {"oneOf": [{"$ref": "#/components/schemas/SignUp"}, {"type": "null"}]},
            "last_active_session_id": _NULLABLE_STR,
            "user": {"oneOf": [{"$ref": "#/components/schemas/User"}, {"type": "null"}]},
        },
    },
}

_ANSWERS = {
    "get_client": "Client",
    "create_sign_up": "SignUp",
    "prepare_sign_up": "SignUp",
    "attempt_sign_up": "SignUp",
    "get_sign_up": "SignUp",
    "create_sign_in": "SignIn",
    "prepare_sign_in": "SignIn",
    "attempt_sign_in": "SignIn",
    "get_sign_in": "SignIn",
    "touch_session": "Session",
    "end_session": "Session",
    "get_me": "User",
    "patch_me": "User",
    "add_email_address": "EmailAddress",
    "prepare_email_address": "EmailAddress",
    "attempt_email_address": "EmailAddress",
    "get_email_address": "EmailAddress",
    "delete_email_address": "EmailAddress",
    "list_sessions": "SessionList",
    "revoke_session": "Session",
}

_BODIES: dict[str, dict[str, str]] = {
    "create_sign_up": {"email_address": "string"},
    "prepare_sign_up": {"strategy": "string", "redirect_url": "string"},
    "create_sign_in": {"identifier": "string"},
    "prepare_sign_in": {
        "strategy": "string",
        "email_address_id": "string",
        "redirect_url": "string",
    },
    "patch_me": {"primary_email_address_id": "string"},
    "add_email_address": {"email_address": "string"},
    "prepare_email_address": {"strategy": "string", "redirect_url": "string"},
    # the code from the email, typed on the device that asked (strategy email_code)
    "attempt_sign_in": {"strategy": "string", "code": "string"},
    "attempt_sign_up": {"strategy": "string", "code": "string"},
    "attempt_email_address": {"strategy": "string", "code": "string"},
    "confirm": {"confirmation_code": "string", "csrf_token": "string"},
    "resend": {"csrf_token": "string"},
}

_WAITING = {"get_sign_up", "get_sign_in", "get_email_address"}


def _operation(method: str, template: str, name: str) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": name, "responses": {}}
    params: list[dict[str, Any]] = []
    if "{id}" in template:
        params.append({"name": "id", "in": "path", "required": True, "schema": {"type": "string"}})
    if name in _WAITING:
        params += [
            {"name": "wait", "in": "query", "schema": {"type": "number", "maximum": 30}},
            {"name": "version", "in": "query", "schema": {"type": "integer"}},
        ]
    if name == "click":
        params.append(
            {"name": "token", "in": "query", "required": True, "schema": {"type": "string"}}
        )
    if params:
        op["parameters"] = params
    if name in _BODIES:
        schema = {
            "type": "object",
            "properties": {k: {"type": v} for k, v in _BODIES[name].items()},
        }
        content = {"application/x-www-form-urlencoded": {"schema": schema}}
        if name not in {"confirm", "resend"}:
            content["application/json"] = {"schema": schema}
        op["requestBody"] = {"required": True, "content": content}
    error = {
        "description": "error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if name in _ANSWERS:
        ref = {"$ref": f"#/components/schemas/{_ANSWERS[name]}"}
        op["responses"]["200"] = {
            "description": _ANSWERS[name],
            "content": {"application/json": {"schema": ref}},
        }
        op["responses"]["4XX"] = error
    elif name == "openapi":
        op["responses"]["200"] = {
            "description": "this document",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    else:
        op["responses"]["200"] = {
            "description": "an HTML page",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
        op["responses"]["303"] = {"description": "a redirect (the token leaves the URL)"}
        op["responses"]["4XX"] = {
            "description": "an HTML error page",
            "content": {"text/html": {"schema": {"type": "string"}}},
        }
    return op


@cache
def openapi_document(prefix: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for the routes served under ``prefix``."""
    paths: dict[str, dict[str, Any]] = {}
    for method, template, name in SERVED_ROUTES:
        paths.setdefault(prefix + template, {})[method.lower()] = _operation(method, template, name)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "magiclink HTTP API",
            "version": "1",
            "description": "Passwordless email-link authentication (see docs/http-api.md).",
        },
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }


@cache
def _body(prefix: str) -> bytes:
    return json.dumps(openapi_document(prefix), separators=(",", ":")).encode()


def openapi_response(prefix: str, method: str) -> Response:
    """``GET /v1/openapi.json``."""
    if method not in {"GET", "HEAD"}:
        return error_response(MethodNotAllowedError(method, ["GET"]))
    response = json_response({})
    response.body = _body(prefix)
    return response.defaults(API)
