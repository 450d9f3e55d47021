"""The data of the OpenAPI document (:mod:`.openapi`): the objects the API answers with, which
operation answers which, and the request bodies each operation takes."""

from __future__ import annotations

from typing import Any

from magiclink_core import FailureReason

_NULLABLE_STR = {"type": ["string", "null"]}
_MS = {"type": "integer", "description": "milliseconds since the Unix epoch"}
_STRATEGY = {"enum": ["email_link", "email_code"]}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["errors"],
        "properties": {
            "errors": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["code", "message", "long_message", "meta"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "long_message": {"type": "string"},
                        "meta": {
                            "type": "object",
                            "properties": {
                                "attempts_left": {"type": "integer", "minimum": 0},
                                "retry_after": {"type": "integer", "minimum": 1},
                            },
                        },
                    },
                },
            }
        },
    },
    "Verification": {
        "type": "object",
        "properties": {
            "object": {"const": "verification"},
            "strategy": _STRATEGY,
            "supported_strategies": {"type": "array", "items": _STRATEGY},
            "status": {"enum": ["unverified", "verified", "expired", "failed", "client_mismatch"]},
            "expire_at": _MS,
            "verified_at_client": _NULLABLE_STR,
            "verified_from_the_same_client": {"type": "boolean"},
            "confirmation_code": _NULLABLE_STR,
            "redirect_url": _NULLABLE_STR,
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
            "supported_first_factors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "strategy": _STRATEGY,
                        "safe_identifier": {"type": "string"},
                        "email_address_id": {"type": "string"},
                    },
                },
            },
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
            "verifications": {
                "type": "object",
                "properties": {
                    "email_address": {
                        "oneOf": [{"$ref": "#/components/schemas/Verification"}, {"type": "null"}]
                    }
                },
            },
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
            "verification": {
                "oneOf": [{"$ref": "#/components/schemas/Verification"}, {"type": "null"}]
            },
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

ANSWERS = {
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

# -- request bodies ----------------------------------------------------------------------------

_EMAIL = {
    "type": "string",
    "format": "email",
    "minLength": 3,
    "maxLength": 254,
    "description": "One plain address (no display name, no list); checked and normalised by "
    "the server, which may still refuse it (422 invalid_email_address).",
}
_REDIRECT = {
    "type": "string",
    "format": "uri-reference",
    "maxLength": 2048,
    "description": "Where the link's click lands: a path on the app (`/welcome`) or an "
    "absolute http(s) URL on an allowed origin (otherwise 422 redirect_url_not_allowed). "
    "Not needed with strategy email_code.",
}
_PREPARE = {
    "strategy": {
        "enum": ["email_link", "email_code"],
        "default": "email_link",
        "description": "email_link: the email's link (and code, as the server's settings say); "
        "email_code: a code only.",
    },
    "redirect_url": _REDIRECT,
}
_ATTEMPT = {
    "strategy": {"enum": ["email_code"], "default": "email_code"},
    "code": {
        "type": "string",
        "minLength": 1,
        "maxLength": 32,
        "pattern": r"[^\s-]",
        "description": "The code from the email; spaces and dashes are ignored.",
    },
}

BODIES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "create_sign_up": ({"email_address": _EMAIL}, ["email_address"]),
    "prepare_sign_up": (_PREPARE, []),
    "create_sign_in": ({"identifier": _EMAIL}, ["identifier"]),
    "prepare_sign_in": (
        {
            **_PREPARE,
            "email_address_id": {
                "type": "string",
                "maxLength": 2048,
                "description": "One of the sign-in's supported_first_factors (the only one).",
            },
        },
        [],
    ),
    "patch_me": (
        {"primary_email_address_id": {"type": "string", "minLength": 1, "maxLength": 2048}},
        ["primary_email_address_id"],
    ),
    "add_email_address": ({"email_address": _EMAIL}, ["email_address"]),
    "prepare_email_address": (_PREPARE, []),
    # the code from the email, typed on the device that asked (strategy email_code)
    "attempt_sign_in": (_ATTEMPT, ["code"]),
    "attempt_sign_up": (_ATTEMPT, ["code"]),
    "attempt_email_address": (_ATTEMPT, ["code"]),
    "confirm": (
        {
            "confirmation_code": {
                "type": "string",
                "minLength": 1,
                "maxLength": 16,
                "pattern": r"\S",
                "description": "The code the device that asked for the link shows.",
            },
            "csrf_token": {
                "type": "string",
                "minLength": 1,
                "description": "The form's hidden field: equal to the CSRF cookie.",
            },
        },
        ["confirmation_code", "csrf_token"],
    ),
    "resend": (
        {"csrf_token": {"type": "string", "minLength": 1}},
        ["csrf_token"],
    ),
}
BODY_OPTIONAL = {"prepare_sign_up", "prepare_sign_in", "prepare_email_address"}
"""Bodies that may be left out (every field has a default)."""
