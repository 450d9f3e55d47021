"""The JSON API (docs/http-api.md): parse, one core call, serialise. No rule lives here.

Each route is a method, a path template and the :class:`Api` method that answers it
(:data:`ROUTES`); the OpenAPI document is built from the same table. Errors are the core's typed
errors (plus the HTTP layer's own, ``errors.py``), answered with their own code and status.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

import anyio

from magiclink_core import (
    MAX_WAIT,
    AuthError,
    Client,
    EmailAddress,
    InvalidRequestError,
    LinkResult,
    MagicLinks,
    NotFoundError,
    RequestInfo,
    Session,
    SessionStatus,
    SignIn,
    SignUp,
    Strategy,
    UnauthenticatedError,
    VerificationStatus,
)

from .cookies import CookieNames, same_origin
from .errors import CSRFError
from .http import Disconnected, Receive, Request, Response, error_response, json_response
from .routing import Route, Router
from .security import API, SIGNED_OUT
from .wire import email_address_json, session_json, sign_in_json, sign_up_json, user_json

T = TypeVar("T")
MAX_WAIT_SECONDS = MAX_WAIT.total_seconds()


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


def _string(data: dict[str, Any], name: str) -> str:
    value = _optional(data, name)
    if value is None:
        raise InvalidRequestError(long_message=f"{name} is required.")
    return value


def _optional(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequestError(long_message=f"{name} must be a string.")
    if len(value) > MAX_TEXT:
        raise InvalidRequestError(long_message=f"{name} must be at most {MAX_TEXT} characters.")
    return value


def _strategy(data: dict[str, Any], *allowed: Strategy) -> Strategy:
    """The body's ``strategy`` (the first of ``allowed`` when absent)."""
    strategy = data.get("strategy") or allowed[0]
    for known in allowed:
        if strategy == known:
            return known
    raise InvalidRequestError(long_message=f"strategy must be {' or '.join(allowed)}.")


MAX_TEXT = 2048
"""The longest text field a body may carry (an address, a redirect URL), in characters."""
_PREPARE: tuple[Strategy, ...] = ("email_link", "email_code")
# a query's numbers as JSON writes them: no "nan", "inf", "1_000" or surrounding spaces
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WHOLE = re.compile(r"\+?[0-9]{1,19}")
_STATUSES = tuple(status.value for status in VerificationStatus)
MAX_VERSION = 2**63 - 1  # a version is a 64-bit counter in every storage


class Api:
    """The JSON API below ``prefix``; one instance per middleware, state per call."""

    def __init__(self, magiclinks: MagicLinks, names: CookieNames) -> None:
        self.magiclinks = magiclinks
        self.names = names

    async def handle(self, call: Call, path: str) -> Response | None:
        """Answer one request (``path`` is below the prefix); None when the client left."""
        request = call.request
        try:
            handler, params = ROUTER.match(request.method, path)
            if request.method not in {"GET", "HEAD"}:
                json_body = (request.header("content-type") or "").startswith("application/json")
                if not same_origin(
                    request.scope, self.magiclinks.settings.base_url, allow_missing=json_body
                ):
                    raise CSRFError()
            response = await handler(self, call, params)
        except AuthError as exc:
            response = error_response(exc)
        except Disconnected:
            return None
        return None if response is None else response.defaults(API)

    # -- helpers ------------------------------------------------------------------------------

    async def _client(self, call: Call) -> Client:
        """The calling client, made (and its cookie set) on first use."""
        client = await self._known_client(call)
        if client is None:
            client, token = await self.magiclinks.create_client()
            call.client = client
            call.cookies_out.append(self.names.set_client(token))
        return client

    async def _known_client(self, call: Call) -> Client | None:
        if not call.client_loaded:
            token = call.request.cookies.get(self.names.client)
            call.client = await self.magiclinks.get_client(token)
            call.client_loaded = True
        return call.client

    async def _owner(self, call: Call) -> Client:
        client = await self._known_client(call)
        if client is None:
            raise NotFoundError()
        return client

    def _sign_in_json(self, sign_in: SignIn) -> dict[str, Any]:
        return sign_in_json(sign_in, self.magiclinks.first_factors(sign_in))

    def _signed_in(self, call: Call, result: LinkResult[SignIn] | LinkResult[SignUp]) -> None:
        """The code was typed on the client that asked: its session cookie is set now."""
        if result.session_token is not None:
            call.cookies_out.append(self.names.set_session(result.session_token))

    @staticmethod
    def _session(call: Call) -> Session:
        if call.session is None:
            raise UnauthenticatedError()
        return call.session

    @staticmethod
    def _wait_args(call: Call) -> tuple[float, int | None, VerificationStatus | None]:
        """``?wait=`` (seconds, 0 to MAX_WAIT), ``?version=`` (a whole number) and
        ``?verification_status=`` (one of the statuses): absent is the default, anything else
        that is not such a value (empty included) is a 400."""
        query = call.request.query
        wait, version = query.get("wait"), query.get("version")
        status = query.get("verification_status")
        if wait is not None and _NUMBER.fullmatch(wait) is None:
            raise InvalidRequestError(long_message="wait must be a number of seconds.")
        if version is not None and (
            _WHOLE.fullmatch(version) is None or int(version) > MAX_VERSION
        ):
            raise InvalidRequestError(long_message="version must be a whole number.")
        if status is not None and status not in _STATUSES:
            raise InvalidRequestError(
                long_message=f"verification_status must be one of {', '.join(_STATUSES)}."
            )
        seconds = 0.0 if wait is None else float(wait)
        if not 0 <= seconds <= MAX_WAIT_SECONDS:
            raise InvalidRequestError(
                long_message=f"wait must be between 0 and {MAX_WAIT_SECONDS:g}."
            )
        return (
            seconds,
            None if version is None else int(version),
            None if status is None else VerificationStatus(status),
        )

    async def _read_or_wait(
        self,
        call: Call,
        read: Callable[[], Awaitable[T]],
        wait_for: Callable[..., Awaitable[T]],
    ) -> T | None:
        """``read()`` for a plain GET; with ``?wait=``, the core's wait for a change, ended early
        when the HTTP client goes away (then None: nobody is left to answer)."""
        wait, version, status = self._wait_args(call)
        if not wait:
            return await read()
        return await _until_disconnect(
            call,
            lambda: wait_for(
                timeout=timedelta(seconds=wait), since_version=version, since_status=status
            ),
        )

    # -- client -------------------------------------------------------------------------------

    async def get_client(self, call: Call, params: dict[str, str]) -> Response:
        client = await self._client(call)
        state = await self.magiclinks.client_state(client)
        current = call.session.id if call.session else None
        # the signed-in user rides along, so a page learns who is signed in (or that nobody
        # is) from this one answer: no request of a signed-out page answers 401
        user = await self._user(call.session.user_id) if call.session else None
        return json_response(
            {
                "object": "client",
                "id": client.id,
                "sessions": [session_json(s, current) for s in state.sessions],
                "sign_in": self._sign_in_json(state.sign_in) if state.sign_in else None,
                "sign_up": sign_up_json(state.sign_up) if state.sign_up else None,
                "last_active_session_id": current
                if current in {s.id for s in state.sessions}
                else None,
                "user": user,
            }
        )

    async def create_sign_up(self, call: Call, params: dict[str, str]) -> Response:
        email = _string(await call.request.form(), "email_address")
        client = await self._client(call)
        sign_up = await self.magiclinks.create_sign_up(client, email, request=call.info)
        return json_response(sign_up_json(sign_up))

    async def prepare_sign_up(self, call: Call, params: dict[str, str]) -> Response:
        data = await call.request.form()
        sign_up = await self.magiclinks.prepare_sign_up_verification(
            await self._owner(call),
            params["id"],
            redirect_url=_optional(data, "redirect_url"),
            request=call.info,
            strategy=_strategy(data, *_PREPARE),
        )
        return json_response(sign_up_json(sign_up))

    async def attempt_sign_up(self, call: Call, params: dict[str, str]) -> Response:
        data = await call.request.form()
        _strategy(data, "email_code")
        result = await self.magiclinks.attempt_sign_up_verification(
            await self._owner(call), params["id"], code=_string(data, "code"), request=call.info
        )
        self._signed_in(call, result)
        return json_response(sign_up_json(result.attempt))

    async def get_sign_up(self, call: Call, params: dict[str, str]) -> Response | None:
        client = await self._owner(call)
        sign_up = await self._read_or_wait(
            call,
            partial(self.magiclinks.get_sign_up, client, params["id"]),
            partial(self.magiclinks.wait_for_sign_up, client, params["id"]),
        )
        return None if sign_up is None else json_response(sign_up_json(sign_up))

    async def create_sign_in(self, call: Call, params: dict[str, str]) -> Response:
        identifier = _string(await call.request.form(), "identifier")
        client = await self._client(call)
        sign_in = await self.magiclinks.create_sign_in(client, identifier, request=call.info)
        return json_response(self._sign_in_json(sign_in))

    async def prepare_sign_in(self, call: Call, params: dict[str, str]) -> Response:
        data = await call.request.form()
        sign_in = await self.magiclinks.prepare_first_factor(
            await self._owner(call),
            params["id"],
            email_address_id=_optional(data, "email_address_id"),
            redirect_url=_optional(data, "redirect_url"),
            request=call.info,
            strategy=_strategy(data, *_PREPARE),
        )
        return json_response(self._sign_in_json(sign_in))

    async def attempt_sign_in(self, call: Call, params: dict[str, str]) -> Response:
        data = await call.request.form()
        result = await self.magiclinks.attempt_first_factor(
            await self._owner(call),
            params["id"],
            code=_string(data, "code"),
            strategy=_strategy(data, "email_code"),
            request=call.info,
        )
        self._signed_in(call, result)
        return json_response(self._sign_in_json(result.attempt))

    async def get_sign_in(self, call: Call, params: dict[str, str]) -> Response | None:
        client = await self._owner(call)
        sign_in = await self._read_or_wait(
            call,
            partial(self.magiclinks.get_sign_in, client, params["id"]),
            partial(self.magiclinks.wait_for_sign_in, client, params["id"]),
        )
        return None if sign_in is None else json_response(self._sign_in_json(sign_in))

    # -- the client's sessions -----------------------------------------------------------------

    async def touch_session(self, call: Call, params: dict[str, str]) -> Response:
        await call.request.body()
        client = await self._owner(call)
        current = call.session
        if current is not None and current.id == params["id"] and current.client_id == client.id:
            # the session this browser's cookie already works for (the hosted completion page
            # collects the one its link just made): kept as it is, nothing written
            return json_response(session_json(current, current.id))
        session, token = await self.magiclinks.activate_session(client, params["id"])
        call.cookies_out.append(self.names.set_session(token))
        return json_response(session_json(session, session.id))

    async def end_session(self, call: Call, params: dict[str, str]) -> Response:
        await call.request.body()
        client = await self._known_client(call)
        current = call.session.id if call.session else None
        if client is None and call.session is None:
            raise NotFoundError(long_message="No such session.")
        session = await self.magiclinks.end_session(
            params["id"],
            client=client,
            user_id=call.session.user_id if call.session else None,
        )
        response = json_response(session_json(session, current))
        if session.id == current:
            self._sign_out_here(call, response)
        return response

    # -- the signed-in user ---------------------------------------------------------------------

    async def _user(self, user_id: str) -> dict[str, Any]:
        user = await self.magiclinks.get_user(user_id)
        return user_json(user, await self.magiclinks.list_email_addresses(user.id))

    async def get_me(self, call: Call, params: dict[str, str]) -> Response:
        return json_response(await self._user(self._session(call).user_id))

    async def patch_me(self, call: Call, params: dict[str, str]) -> Response:
        session = self._session(call)
        address_id = _string(await call.request.form(), "primary_email_address_id")
        await self.magiclinks.set_primary_email_address(session, address_id, request=call.info)
        return json_response(await self._user(session.user_id))

    async def _address_json(self, session: Session, address: EmailAddress) -> Response:
        user = await self.magiclinks.get_user(session.user_id)
        return json_response(email_address_json(address, user.primary_email_address_id))

    async def add_email_address(self, call: Call, params: dict[str, str]) -> Response:
        session = self._session(call)
        email = _string(await call.request.form(), "email_address")
        address = await self.magiclinks.add_email_address(session, email, request=call.info)
        return await self._address_json(session, address)

    async def prepare_email_address(self, call: Call, params: dict[str, str]) -> Response:
        session = self._session(call)
        data = await call.request.form()
        address = await self.magiclinks.prepare_email_verification(
            session,
            params["id"],
            redirect_url=_optional(data, "redirect_url"),
            request=call.info,
            strategy=_strategy(data, *_PREPARE),
        )
        return await self._address_json(session, address)

    async def attempt_email_address(self, call: Call, params: dict[str, str]) -> Response:
        session = self._session(call)
        data = await call.request.form()
        _strategy(data, "email_code")
        result = await self.magiclinks.attempt_email_verification(
            session, params["id"], code=_string(data, "code"), request=call.info
        )
        return await self._address_json(session, result.attempt)

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
        await self.magiclinks.remove_email_address(session, params["id"], request=call.info)
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
        response = json_response(session_json(revoked, session.id))
        if revoked.id == session.id:  # this browser's own: a sign-out, as end_session's
            self._sign_out_here(call, response)
        return response

    def _sign_out_here(self, call: Call, response: Response) -> None:
        """The answer that ended this browser's own session drops what the browser kept of it:
        the session and client cookies, and the site's cache."""
        call.cookies_out.extend(self.names.signed_out())
        response.add(*SIGNED_OUT)


async def _until_disconnect(call: Call, wait: Callable[[], Awaitable[T]]) -> T | None:
    """Run ``wait`` and stop it as soon as the HTTP client disconnects (then None). An error
    the wait raises (not found, expired, storage down) comes out as itself, not wrapped in the
    task group's exception group."""
    outcome: list[T] = []
    failure: list[Exception] = []
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while (await call.receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()  # the wait below ends; nobody is left to answer

        group.start_soon(watch)
        try:
            outcome.append(await wait())
        except Exception as exc:
            failure.append(exc)
        group.cancel_scope.cancel()
    if failure:
        raise failure[0]
    return outcome[0] if outcome else None


Handler = Callable[[Api, Call, dict[str, str]], Awaitable[Response | None]]

ROUTES: list[Route[Handler]] = [
    Route("GET", "/v1/client", Api.get_client),
    Route("POST", "/v1/client/sign_ups", Api.create_sign_up),
    Route("POST", "/v1/client/sign_ups/{id}/prepare_verification", Api.prepare_sign_up),
    Route("POST", "/v1/client/sign_ups/{id}/attempt_verification", Api.attempt_sign_up),
    Route("GET", "/v1/client/sign_ups/{id}", Api.get_sign_up),
    Route("POST", "/v1/client/sign_ins", Api.create_sign_in),
    Route("POST", "/v1/client/sign_ins/{id}/prepare_first_factor", Api.prepare_sign_in),
    Route("POST", "/v1/client/sign_ins/{id}/attempt_first_factor", Api.attempt_sign_in),
    Route("GET", "/v1/client/sign_ins/{id}", Api.get_sign_in),
    Route("POST", "/v1/client/sessions/{id}/touch", Api.touch_session),
    Route("POST", "/v1/client/sessions/{id}/end", Api.end_session),
    Route("GET", "/v1/me", Api.get_me),
    Route("PATCH", "/v1/me", Api.patch_me),
    Route("POST", "/v1/me/email_addresses", Api.add_email_address),
    Route("POST", "/v1/me/email_addresses/{id}/prepare_verification", Api.prepare_email_address),
    Route("POST", "/v1/me/email_addresses/{id}/attempt_verification", Api.attempt_email_address),
    Route("GET", "/v1/me/email_addresses/{id}", Api.get_email_address),
    Route("DELETE", "/v1/me/email_addresses/{id}", Api.delete_email_address),
    Route("GET", "/v1/me/sessions", Api.list_sessions),
    Route("POST", "/v1/me/sessions/{id}/revoke", Api.revoke_session),
]
ROUTER: Router[Handler] = Router(ROUTES)
