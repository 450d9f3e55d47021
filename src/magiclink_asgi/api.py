"""The JSON API (docs/http-api.md): parse, one core call, serialise. No rule lives here.

Each route is a method and a path template; :data:`ROUTES` is also what the OpenAPI document
and its test are checked against.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import anyio

from magiclink_core import (
    AuthError,
    Client,
    ConfirmationCodeError,
    EmailAddress,
    MagicLinks,
    RateLimitedError,
    RequestInfo,
    Session,
    SessionStatus,
    SignIn,
    SignUp,
    User,
    Verification,
    verified_from_the_same_client,
)

from .cookies import CookieNames, same_origin
from .http import BodyError, Disconnected, Receive, Request, Response, json_response

MAX_WAIT_SECONDS = 30.0

STATUS_BY_CODE: dict[str, int] = {
    "invalid_request": 400,
    "unauthenticated": 401,
    "csrf_failed": 403,
    "not_allowed": 403,
    "client_mismatch": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "invalid_state": 409,
    "conflict": 409,
    "expired": 410,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "invalid_email_address": 422,
    "redirect_url_not_allowed": 422,
    "identifier_exists": 422,
    "identifier_not_found": 422,
    "confirmation_code_incorrect": 422,
    "failed": 422,
    "rate_limited": 429,
    "mail_delivery_failed": 502,
    "storage_unavailable": 503,
}


def error_response(
    code: str,
    message: str,
    long_message: str | None = None,
    *,
    status: int | None = None,
    meta: dict[str, Any] | None = None,
) -> Response:
    """The API's error shape: ``{"errors": [{code, message, long_message, meta}]}``."""
    body = {
        "errors": [
            {
                "code": code,
                "message": message,
                "long_message": long_message or message,
                "meta": meta or {},
            }
        ]
    }
    return json_response(body, status or STATUS_BY_CODE.get(code, 400))


def auth_error_response(error: AuthError) -> Response:
    """A core error as an API error, with ``Retry-After`` for a rate limit."""
    meta: dict[str, Any] = {}
    if isinstance(error, ConfirmationCodeError):
        meta["attempts_left"] = error.attempts_left
    retry_after: int | None = None
    if isinstance(error, RateLimitedError):
        retry_after = max(1, int(error.retry_after.total_seconds() + 0.999))
        meta["retry_after"] = retry_after
    response = error_response(error.code, error.message, error.long_message, meta=meta)
    if retry_after is not None:
        response.add("Retry-After", str(retry_after))
    return response


class ApiError(Exception):
    """A request the API refuses before calling the core."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        self.code = code
        self.message = message
        self.status = status
        super().__init__(message)


# -- serialisation --------------------------------------------------------------------------


def ms(value: datetime | None) -> int | None:
    """Milliseconds since the Unix epoch."""
    return None if value is None else int(value.timestamp() * 1000)


def verification_json(attempt: SignIn | SignUp | EmailAddress) -> dict[str, Any] | None:
    v: Verification | None = attempt.verification
    if v is None:
        return None
    return {
        "object": "verification",
        "strategy": v.strategy,
        "status": v.status.value,
        "expire_at": ms(v.expire_at),
        "verified_at_client": v.verified_at_client,
        "verified_from_the_same_client": verified_from_the_same_client(attempt),
        "confirmation_code": v.confirmation_code,
        "redirect_url": v.redirect_url,
    }


def sign_in_json(sign_in: SignIn) -> dict[str, Any]:
    return {
        "object": "sign_in",
        "id": sign_in.id,
        "status": sign_in.status.value,
        "identifier": sign_in.identifier,
        "supported_first_factors": [
            {
                "strategy": f.strategy,
                "safe_identifier": f.safe_identifier,
                "email_address_id": f.email_address_id,
            }
            for f in sign_in.supported_first_factors
        ],
        "first_factor_verification": verification_json(sign_in),
        "created_session_id": sign_in.created_session_id,
        "version": sign_in.version,
    }


def sign_up_json(sign_up: SignUp) -> dict[str, Any]:
    return {
        "object": "sign_up",
        "id": sign_up.id,
        "status": sign_up.status.value,
        "email_address": sign_up.email_address,
        "verifications": {"email_address": verification_json(sign_up)},
        "created_user_id": sign_up.created_user_id,
        "created_session_id": sign_up.created_session_id,
        "version": sign_up.version,
    }


def email_address_json(address: EmailAddress, primary_id: str | None) -> dict[str, Any]:
    return {
        "object": "email_address",
        "id": address.id,
        "email_address": address.email,
        "verified": address.verified,
        "primary": address.id == primary_id,
        "verification": verification_json(address),
        "version": address.version,
    }


def session_json(session: Session, current_id: str | None) -> dict[str, Any]:
    return {
        "object": "session",
        "id": session.id,
        "status": session.status.value,
        "user_id": session.user_id,
        "last_active_at": ms(session.last_active_at),
        "expire_at": ms(session.expire_at),
        "user_agent": session.user_agent,
        "ip_address": session.ip_address,
        "current": session.id == current_id,
    }


def user_json(user: User, addresses: list[EmailAddress]) -> dict[str, Any]:
    return {
        "object": "user",
        "id": user.id,
        "primary_email_address_id": user.primary_email_address_id,
        "email_addresses": [
            email_address_json(a, user.primary_email_address_id) for a in addresses
        ],
        "created_at": ms(user.created_at),
    }


# -- the request's context ------------------------------------------------------------------


@dataclass
class Call:
    """What one API request knows: the request, its session, its client (made lazily)."""

    request: Request
    receive: Receive
    session: Session | None
    describe: Callable[[], RequestInfo]
    cookies_out: list[str] = field(default_factory=list)
    client: Client | None = None
    client_loaded: bool = False
    _info: RequestInfo | None = None

    @property
    def info(self) -> RequestInfo:
        """Who is asking (User-Agent parsed on first use only: most calls never need it)."""
        if self._info is None:
            self._info = self.describe()
        return self._info


Handler = Callable[["Api", Call, dict[str, str]], Awaitable[Response | None]]

ROUTES: list[tuple[str, str, str]] = [
    # (method, path template below the prefix, handler name)
    ("GET", "/v1/client", "get_client"),
    ("POST", "/v1/client/sign_ups", "create_sign_up"),
    ("POST", "/v1/client/sign_ups/{id}/prepare_verification", "prepare_sign_up"),
    ("GET", "/v1/client/sign_ups/{id}", "get_sign_up"),
    ("POST", "/v1/client/sign_ins", "create_sign_in"),
    ("POST", "/v1/client/sign_ins/{id}/prepare_first_factor", "prepare_sign_in"),
    ("GET", "/v1/client/sign_ins/{id}", "get_sign_in"),
    ("POST", "/v1/client/sessions/{id}/touch", "touch_session"),
    ("POST", "/v1/client/sessions/{id}/end", "end_session"),
    ("GET", "/v1/me", "get_me"),
    ("PATCH", "/v1/me", "patch_me"),
    ("POST", "/v1/me/email_addresses", "add_email_address"),
    ("POST", "/v1/me/email_addresses/{id}/prepare_verification", "prepare_email_address"),
    ("GET", "/v1/me/email_addresses/{id}", "get_email_address"),
    ("DELETE", "/v1/me/email_addresses/{id}", "delete_email_address"),
    ("GET", "/v1/me/sessions", "list_sessions"),
    ("POST", "/v1/me/sessions/{id}/revoke", "revoke_session"),
]

_ID = r"(?P<id>[A-Za-z0-9_\-]{1,128})"


def compile_routes(
    routes: list[tuple[str, str, str]],
) -> list[tuple[re.Pattern[str], dict[str, str]]]:
    """Path templates as regexes, each with its methods mapped to handler names."""
    compiled: dict[str, dict[str, str]] = {}
    for method, template, name in routes:
        compiled.setdefault(template, {})[method] = name
    return [
        (re.compile("^" + re.escape(t).replace(re.escape("{id}"), _ID) + "$"), methods)
        for t, methods in compiled.items()
    ]


def _string(data: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise ApiError("invalid_request", f"{name} is required.")
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise ApiError("invalid_request", f"{name} must be a string.")
    return value


def _strategy(data: dict[str, Any]) -> None:
    strategy = data.get("strategy", "email_link")
    if strategy != "email_link":
        raise ApiError("invalid_request", "strategy must be email_link.")


class Api:
    """The JSON API below ``prefix``; one instance per middleware, state per call."""

    def __init__(self, magiclinks: MagicLinks, names: CookieNames) -> None:
        self.magiclinks = magiclinks
        self.names = names
        self.routes = compile_routes(ROUTES)

    async def handle(self, call: Call, path: str) -> Response | None:
        """Answer one request (``path`` is below the prefix); None when the client left."""
        request = call.request
        for pattern, methods in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            method = "GET" if request.method == "HEAD" else request.method
            name = methods.get(method)
            if name is None:
                response = error_response(
                    "method_not_allowed", f"{request.method} is not allowed here."
                )
                response.add("Allow", ", ".join(sorted(methods)))
                return response
            try:
                if method != "GET":
                    json_body = (request.header("content-type") or "").startswith(
                        "application/json"
                    )
                    if not same_origin(
                        request.scope, self.magiclinks.settings.base_url, allow_missing=json_body
                    ):
                        raise ApiError("csrf_failed", "Cross-origin request refused.")
                handler: Callable[[Call, dict[str, str]], Awaitable[Response | None]]
                handler = getattr(self, name)
                return await handler(call, match.groupdict())
            except ApiError as exc:
                return error_response(exc.code, exc.message, status=exc.status)
            except BodyError as exc:
                return error_response(exc.code, exc.message, status=exc.status)
            except AuthError as exc:
                return auth_error_response(exc)
            except Disconnected:
                return None
        return error_response("not_found", "No such endpoint.")

    # -- helpers ------------------------------------------------------------------------------

    async def _client(self, call: Call, *, create: bool) -> Client | None:
        if not call.client_loaded:
            token = call.request.cookies.get(self.names.client)
            call.client = await self.magiclinks.get_client(token)
            call.client_loaded = True
        if call.client is None and create:
            call.client, token = await self.magiclinks.create_client()
            call.cookies_out.append(self.names.set_client(token))
        return call.client

    async def _owner(self, call: Call) -> Client:
        client = await self._client(call, create=False)
        if client is None:
            raise ApiError("not_found", "Not found.")
        return client

    @staticmethod
    def _session(call: Call) -> Session:
        if call.session is None:
            raise ApiError("unauthenticated", "You need to be signed in.")
        return call.session

    @staticmethod
    def _wait_args(call: Call) -> tuple[float, int | None]:
        query = call.request.query
        try:
            wait = float(query.get("wait") or 0)
            version = int(query["version"]) if query.get("version") else None
        except ValueError:
            raise ApiError("invalid_request", "wait and version must be numbers.") from None
        if not 0 <= wait <= MAX_WAIT_SECONDS or wait != wait:
            raise ApiError("invalid_request", f"wait must be between 0 and {MAX_WAIT_SECONDS:g}.")
        return wait, version

    async def _read_or_wait(
        self,
        call: Call,
        read: Callable[[], Awaitable[Any]],
        wait_for: Callable[..., Awaitable[Any]],
    ) -> Any | None:
        """``read()`` for a plain GET; with ``?wait=``, the core's wait for a change, ended early
        when the HTTP client goes away (then None: nobody is left to answer)."""
        wait, version = self._wait_args(call)
        if not wait:
            return await read()
        return await self._until_disconnect(
            call,
            lambda cancelled: wait_for(
                timeout=timedelta(seconds=wait), since_version=version, cancelled=cancelled
            ),
        )

    @staticmethod
    async def _until_disconnect(
        call: Call, wait: Callable[[anyio.Event], Awaitable[Any]]
    ) -> Any | None:
        """Run ``wait`` and stop it as soon as the HTTP client disconnects."""
        cancelled = anyio.Event()
        result: Any | None = None
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                while True:
                    message = await call.receive()
                    if message["type"] == "http.disconnect":
                        cancelled.set()
                        group.cancel_scope.cancel()
                        return

            group.start_soon(watch)
            result = await wait(cancelled)
            group.cancel_scope.cancel()
        return None if cancelled.is_set() else result

    # -- client -------------------------------------------------------------------------------

    async def get_client(self, call: Call, params: dict[str, str]) -> Response:
        client = await self._client(call, create=True)
        assert client is not None
        state = await self.magiclinks.client_state(client)
        current = call.session.id if call.session else None
        return json_response(
            {
                "object": "client",
                "id": client.id,
                "sessions": [session_json(s, current) for s in state.sessions],
                "sign_in": sign_in_json(state.sign_in) if state.sign_in else None,
                "sign_up": sign_up_json(state.sign_up) if state.sign_up else None,
                "last_active_session_id": current
                if current in {s.id for s in state.sessions}
                else None,
            }
        )

    async def create_sign_up(self, call: Call, params: dict[str, str]) -> Response:
        data = await call.request.form()
        email = _string(data, "email_address")
        client = await self._client(call, create=True)
        assert client is not None
        return json_response(sign_up_json(await self.magiclinks.create_sign_up(client, email)))

    async def prepare_sign_up(self, call: Call, params: dict[str, str]) -> Response:
        data = await call.request.form()
        _strategy(data)
        redirect_url = _string(data, "redirect_url")
        assert redirect_url is not None
        sign_up = await self.magiclinks.prepare_sign_up_verification(
            await self._owner(call), params["id"], redirect_url=redirect_url, request=call.info
        )
        return json_response(sign_up_json(sign_up))

    async def get_sign_up(self, call: Call, params: dict[str, str]) -> Response | None:
        client = await self._owner(call)
        sign_up = await self._read_or_wait(
            call,
            partial(self.magiclinks.get_sign_up, client, params["id"]),
            partial(self.magiclinks.wait_for_sign_up, client, params["id"]),
        )
        return None if sign_up is None else json_response(sign_up_json(sign_up))

    async def create_sign_in(self, call: Call, params: dict[str, str]) -> Response:
        data = await call.request.form()
        identifier = _string(data, "identifier")
        client = await self._client(call, create=True)
        assert client is not None
        return json_response(sign_in_json(await self.magiclinks.create_sign_in(client, identifier)))

    async def prepare_sign_in(self, call: Call, params: dict[str, str]) -> Response:
        data = await call.request.form()
        _strategy(data)
        redirect_url = _string(data, "redirect_url")
        assert redirect_url is not None
        sign_in = await self.magiclinks.prepare_first_factor(
            await self._owner(call),
            params["id"],
            email_address_id=_string(data, "email_address_id", required=False),
            redirect_url=redirect_url,
            request=call.info,
        )
        return json_response(sign_in_json(sign_in))

    async def get_sign_in(self, call: Call, params: dict[str, str]) -> Response | None:
        client = await self._owner(call)
        sign_in = await self._read_or_wait(
            call,
            partial(self.magiclinks.get_sign_in, client, params["id"]),
            partial(self.magiclinks.wait_for_sign_in, client, params["id"]),
        )
        return None if sign_in is None else json_response(sign_in_json(sign_in))

    # -- the client's sessions -----------------------------------------------------------------

    async def touch_session(self, call: Call, params: dict[str, str]) -> Response:
        await call.request.body()
        session, token = await self.magiclinks.activate_session(
            await self._owner(call), params["id"]
        )
        call.cookies_out.append(self.names.set_session(token))
        return json_response(session_json(session, session.id))

    async def end_session(self, call: Call, params: dict[str, str]) -> Response:
        await call.request.body()
        client = await self._client(call, create=False)
        current = call.session.id if call.session else None
        if client is None and call.session is None:
            raise ApiError("not_found", "No such session.")
        session = await self.magiclinks.end_session(
            params["id"],
            client=client,
            user_id=call.session.user_id if call.session else None,
        )
        if session.id == current:
            call.cookies_out.append(self.names.clear_session())
        return json_response(session_json(session, current))

    # -- the signed-in user ---------------------------------------------------------------------

    async def _user(self, user_id: str) -> dict[str, Any]:
        user = await self.magiclinks.get_user(user_id)
        return user_json(user, await self.magiclinks.list_email_addresses(user.id))

    async def get_me(self, call: Call, params: dict[str, str]) -> Response:
        return json_response(await self._user(self._session(call).user_id))

    async def patch_me(self, call: Call, params: dict[str, str]) -> Response:
        session = self._session(call)
        data = await call.request.form()
        address_id = _string(data, "primary_email_address_id")
        assert address_id is not None
        await self.magiclinks.set_primary_email_address(session, address_id)
        return json_response(await self._user(session.user_id))

    async def _address_json(self, session: Session, address: EmailAddress) -> Response:
        user = await self.magiclinks.get_user(session.user_id)
        return json_response(email_address_json(address, user.primary_email_address_id))

    async def add_email_address(self, call: Call, params: dict[str, str]) -> Response:
        session = self._session(call)
        data = await call.request.form()
        address = await self.magiclinks.add_email_address(session, _string(data, "email_address"))
        return await self._address_json(session, address)

    async def prepare_email_address(self, call: Call, params: dict[str, str]) -> Response:
        session = self._session(call)
        data = await call.request.form()
        _strategy(data)
        redirect_url = _string(data, "redirect_url")
        assert redirect_url is not None
        address = await self.magiclinks.prepare_email_verification(
            session, params["id"], redirect_url=redirect_url, request=call.info
        )
        return await self._address_json(session, address)

    async def get_email_address(self, call: Call, params: dict[str, str]) -> Response | None:
        session = self._session(call)
        address = await self._read_or_wait(
            call,
            partial(self.magiclinks.get_email_address, session, params["id"]),
            partial(self.magiclinks.wait_for_email_address, session, params["id"]),
        )
        return None if address is None else await self._address_json(session, address)

    async def delete_email_address(self, call: Call, params: dict[str, str]) -> Response:
        session = self._session(call)
        await call.request.body()
        await self.magiclinks.remove_email_address(session, params["id"])
        return json_response({"object": "email_address", "id": params["id"], "deleted": True})

    async def list_sessions(self, call: Call, params: dict[str, str]) -> Response:
        session = self._session(call)
        sessions = await self.magiclinks.list_sessions(session.user_id)
        return json_response(
            {"object": "list", "data": [session_json(s, session.id) for s in sessions]}
        )

    async def revoke_session(self, call: Call, params: dict[str, str]) -> Response:
        session = self._session(call)
        await call.request.body()
        revoked = await self.magiclinks.end_session(
            params["id"], user_id=session.user_id, status=SessionStatus.REVOKED
        )
        if revoked.id == session.id:
            call.cookies_out.append(self.names.clear_session())
        return json_response(session_json(revoked, session.id))
