"""Configuration, checked when built: unsafe values are refused, not warned about."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .models import CrossDevicePolicy
from .redirects import origin_of
from .tokens import Keyring

MIN_SECRET_BYTES = 32
_VERIFY_SUFFIX = "/v1/verify"  # the hosted routes live below verify_path minus this

EmailVerification = Literal["link_and_code", "link", "code"]


@dataclass(frozen=True, slots=True)
class LinkTerms:
    """The settings every link issued or clicked reads, read from :class:`Settings` once: a
    pydantic model's attribute costs a slow hook on Python 3.11 (pydantic's ``__getattr__``),
    and issuing a link read about twenty of them."""

    sends_links: bool
    sends_codes: bool
    link_ttl: timedelta
    purge_grace: timedelta
    email_code_digits: int
    confirmation_code_digits: int
    app_name: str
    base_url: str
    verify_url: str
    sign_up_page_url: str
    allowed_redirect_origins: tuple[str, ...]
    cross_device: CrossDevicePolicy
    max_confirmation_code_attempts: int
    links_limited: bool
    """Whether a link spends a budget at all (``links_per_address`` or ``links_per_ip``)."""


class Settings(BaseModel):
    """Everything magiclink needs to know about your app.

    Keys rotate as Django's do: ``secret`` signs new tokens (links, sessions, clients) and
    verifies stored ones; ``secret_fallbacks`` (Django's ``SECRET_KEY_FALLBACKS``) only verify.
    To rotate, move the current secret into ``secret_fallbacks`` and set a new ``secret``: nobody
    is signed out, and old links keep working until they expire. Drop a fallback once every
    token made with it has expired (``session_lifetime``).
    """

    # a refused setting's error (often logged with its traceback) must not quote the input:
    # pydantic's would show the start of ``secret`` whenever a check of the whole model fails
    model_config = ConfigDict(
        frozen=True, extra="forbid", arbitrary_types_allowed=True, hide_input_in_errors=True
    )

    secret: SecretStr
    secret_fallbacks: list[SecretStr] = Field(default_factory=list)
    base_url: str
    app_name: str = "magiclink"
    link_ttl: timedelta = timedelta(minutes=10)
    cross_device: CrossDevicePolicy = CrossDevicePolicy.CONFIRM
    allowed_redirect_origins: list[str] = Field(default_factory=list)
    confirmation_code_digits: Annotated[int, Field(ge=4, le=8)] = 6
    max_confirmation_code_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    # what a verification email carries: a link (opened anywhere), a code (typed on the device
    # that asked), or both (the default: whichever is used first consumes both)
    email_verification: EmailVerification = "link_and_code"
    email_code_digits: Annotated[int, Field(ge=6, le=10)] = 6
    # wrong email codes before a verification fails (a new email is then needed)
    max_email_code_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    # wrong email codes per address per window, across its emails (0 turns the limit off)
    email_code_failures_per_address: Annotated[int, Field(ge=0)] = 20
    # wrong email codes per client IP address per window, across addresses (0: off)
    email_code_failures_per_ip: Annotated[int, Field(ge=0)] = 50
    email_code_window: timedelta = timedelta(hours=1)
    # wrong confirmation codes (typed on the device that opened the link) per client IP per
    # window, across links (0: off); each link fails after max_confirmation_code_attempts anyway
    confirmation_code_failures_per_ip: Annotated[int, Field(ge=0)] = 30
    confirmation_code_window: timedelta = timedelta(hours=1)
    session_idle_timeout: timedelta = timedelta(days=7)
    session_lifetime: timedelta = timedelta(days=30)
    session_touch_interval: timedelta = timedelta(minutes=1)
    # a live session is served from memory this long at most, while MagicLinks runs and its
    # notifier is healthy; any change of it on any instance drops it (0 turns the cache off)
    session_cache_ttl: timedelta = timedelta(seconds=5)
    session_cache_size: Annotated[int, Field(ge=0)] = 10_000
    # how long a session's token keeps working once the session is given a new one (a repeated
    # click, activate_session): a double tap's two answers may reach the browser in either order,
    # and it keeps the cookie of the last. Presenting that older token in this time makes it the
    # session's token again (0: a replaced token stops at once)
    session_token_grace: timedelta = timedelta(minutes=1)
    attempt_ttl: timedelta = timedelta(hours=24)
    client_ttl: timedelta = timedelta(days=365)
    # expired records stay readable this long, so a late click still reads "expired"
    purge_grace: timedelta = timedelta(days=1)
    enumeration_protection: bool = True
    check_deliverability: bool = False
    # at most this many link emails to one address per window (0 turns the limit off)
    links_per_address: Annotated[int, Field(ge=0)] = 5
    links_per_address_window: timedelta = timedelta(minutes=10)
    # at most this many link emails asked for from one client IP per window, across addresses,
    # sent or not (0: off). Behind a proxy, tell the web layer which proxies to trust, or every
    # visitor shares the proxy's budget
    links_per_ip: Annotated[int, Field(ge=0)] = 30
    links_per_ip_window: timedelta = timedelta(hours=1)
    # at most this many sign-ups and sign-ins started from one client IP per window (0: off)
    attempts_per_ip: Annotated[int, Field(ge=0)] = 30
    attempts_per_ip_window: timedelta = timedelta(hours=1)
    # adding, removing or making primary an address needs a session at most this old (the
    # person signs in again, with a fresh link or code, to make a recent one); None turns it off
    reverification_window: timedelta | None = timedelta(minutes=10)
    wait_poll_interval: timedelta = timedelta(seconds=2)
    # the storage time of one request, summed over its storage calls (seconds, or a
    # timedelta): past it, the request fails with StorageUnavailableError (503, "temporarily
    # unavailable") instead of waiting on a storage that does not answer
    storage_timeout: timedelta = timedelta(seconds=3)
    # emails go out off the request path while MagicLinks runs: this many at once, a temporary
    # failure tried again after mail_first_retry (doubling up to mail_max_retry; both positive)
    # until the link would expire, then its link withdrawn (that too tried again so while the
    # storage is down)
    mail_workers: Annotated[int, Field(ge=1, le=100)] = 4
    mail_first_retry: timedelta = timedelta(seconds=5)
    mail_max_retry: timedelta = timedelta(minutes=1)
    # at shutdown, queued emails (and withdrawals waiting for the storage) get this long (0 or
    # more); the links of the emails still unsent are withdrawn
    mail_shutdown_grace: timedelta = timedelta(seconds=10)
    # where the emailed link points, below base_url (the ASGI middleware serves it there)
    verify_path: str = "/auth/v1/verify"
    # where the email to an address with no account sends the person to sign up: a path on
    # base_url or an absolute URL; default: the hosted sign-up page below verify_path's prefix
    sign_up_url: str | None = None

    @field_validator("secret", mode="before")
    @classmethod
    def _one_secret(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            raise ValueError(
                "secret takes one secret, the one that signs; older secrets that should still "
                "verify go in secret_fallbacks=[...] (as Django's SECRET_KEY_FALLBACKS)"
            )
        return value

    @field_validator("secret", "secret_fallbacks")
    @classmethod
    def _strong_secrets(cls, value: SecretStr | list[SecretStr]) -> SecretStr | list[SecretStr]:
        for secret in value if isinstance(value, list) else [value]:
            if len(secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"each secret must be at least {MIN_SECRET_BYTES} bytes; "
                    "generate one with: magiclink secret"
                )
        return value

    @field_validator("base_url")
    @classmethod
    def _absolute_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(
                "base_url must be an absolute http(s) URL, such as https://example.com"
            )
        if parts.scheme == "http" and parts.hostname not in {"localhost", "127.0.0.1", "::1"}:
            raise ValueError("base_url must use https unless the app runs on localhost")
        return value.rstrip("/")

    @field_validator("allowed_redirect_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if (
                parts.scheme not in {"http", "https"}
                or not parts.hostname
                or parts.path
                not in {
                    "",
                    "/",
                }
            ):
                raise ValueError(f"{origin!r} is not an origin such as https://app.example.com")
        return [origin_of(o) for o in value]

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if not timedelta(seconds=30) <= self.link_ttl <= timedelta(hours=24):
            raise ValueError("link_ttl must be between 30 seconds and 24 hours")
        if self.session_idle_timeout > self.session_lifetime:
            raise ValueError("session_idle_timeout cannot be longer than session_lifetime")
        if self.session_lifetime <= timedelta(0) or self.session_touch_interval < timedelta(0):
            raise ValueError("session durations must be positive")
        if self.attempt_ttl < self.link_ttl:
            raise ValueError("attempt_ttl must be at least link_ttl")
        if self.session_touch_interval >= self.session_idle_timeout:
            raise ValueError(
                "session_touch_interval must be shorter than session_idle_timeout, or an active "
                "session would time out between two recorded touches"
            )
        if not timedelta(0) <= self.session_token_grace <= self.session_idle_timeout:
            raise ValueError(
                "session_token_grace must be between 0 and session_idle_timeout "
                "(0: a replaced token stops at once)"
            )
        if self.session_cache_ttl < timedelta(0):
            raise ValueError("session_cache_ttl cannot be negative (0 turns the cache off)")
        if self.wait_poll_interval <= timedelta(0):
            raise ValueError("wait_poll_interval must be positive")
        if self.storage_timeout <= timedelta(0):
            raise ValueError("storage_timeout must be positive")
        if self.purge_grace < timedelta(0):
            raise ValueError("purge_grace cannot be negative")
        if self.client_ttl <= timedelta(0):
            raise ValueError("client_ttl must be positive")
        # the delivery worker pauses this long between tries of a failing send: no pause would
        # retry it in a busy loop
        for name in ("mail_first_retry", "mail_max_retry"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        if self.mail_shutdown_grace < timedelta(0):
            raise ValueError(
                "mail_shutdown_grace cannot be negative (0: withdraw unsent links at once)"
            )
        if not self.verify_path.startswith("/") or self.verify_path.startswith("//"):
            raise ValueError(
                "verify_path must be a path starting with one '/', such as /auth/v1/verify"
            )
        for name in (
            "links_per_address_window",
            "links_per_ip_window",
            "attempts_per_ip_window",
            "email_code_window",
            "confirmation_code_window",
        ):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
        if self.reverification_window is not None and not (
            timedelta(0) < self.reverification_window <= self.session_lifetime
        ):
            raise ValueError(
                "reverification_window must be positive and at most session_lifetime "
                "(None turns the check off)"
            )
        if self.sign_up_url is not None:
            parts = urlsplit(self.sign_up_url)
            is_path = self.sign_up_url.startswith("/") and not self.sign_up_url.startswith("//")
            if not is_path and (parts.scheme not in {"http", "https"} or not parts.hostname):
                raise ValueError(
                    "sign_up_url must be a path starting with one '/' or an absolute http(s) URL"
                )
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _secrets_never_quoted(cls, data: Any, handler: ModelWrapValidatorHandler[Settings]) -> Any:
        # defined last, so that it wraps every other check. hide_input_in_errors hides the
        # input from the message only: errors() and json(), which apps and error trackers log
        # as well, would still carry the secrets
        try:
            return handler(data)
        except ValidationError as refused:
            raise ValidationError.from_exception_data(
                refused.title,
                [_without_secrets(error) for error in refused.errors()],
                hide_input=True,
            ) from None

    def __repr__(self) -> str:
        return (
            f"Settings(base_url={self.base_url!r}, app_name={self.app_name!r}, secret=**********)"
        )

    @cached_property
    def keyring(self) -> Keyring:
        """The per-purpose keys: ``secret`` first (it signs), then the fallbacks."""
        secrets = [self.secret, *self.secret_fallbacks]
        return Keyring([s.get_secret_value().encode() for s in secrets])

    @cached_property
    def link_terms(self) -> LinkTerms:
        """What issuing and clicking a link read of these settings, in one plain object."""
        return LinkTerms(
            sends_links=self.sends_links,
            sends_codes=self.sends_codes,
            link_ttl=self.link_ttl,
            purge_grace=self.purge_grace,
            email_code_digits=self.email_code_digits,
            confirmation_code_digits=self.confirmation_code_digits,
            app_name=self.app_name,
            base_url=self.base_url,
            verify_url=self.verify_url,
            sign_up_page_url=self.sign_up_page_url,
            allowed_redirect_origins=tuple(self.allowed_redirect_origins),
            cross_device=self.cross_device,
            max_confirmation_code_attempts=self.max_confirmation_code_attempts,
            links_limited=bool(self.links_per_address or self.links_per_ip),
        )

    @property
    def sends_links(self) -> bool:
        return self.email_verification != "code"

    @property
    def sends_codes(self) -> bool:
        return self.email_verification != "link"

    @cached_property
    def verify_url(self) -> str:
        return f"{self.base_url}{self.verify_path}"

    @cached_property
    def sign_up_page_url(self) -> str:
        """The absolute URL the "no account" email points to (``sign_up_url``, or the hosted
        sign-up page: ``/auth/sign-up`` for ``verify_path`` ``/auth/v1/verify``)."""
        if self.sign_up_url is not None:
            if self.sign_up_url.startswith("/"):
                return f"{self.base_url}{self.sign_up_url}"
            return self.sign_up_url
        prefix = self.verify_path.removesuffix(_VERIFY_SUFFIX)
        if prefix == self.verify_path:  # not <prefix>/v1/verify: no hosted page to point to
            return self.base_url
        return f"{self.base_url}{prefix}/sign-up"

    @property
    def is_https(self) -> bool:
        return self.base_url.startswith("https://")


_HIDDEN = "**********"
_SECRET_FIELDS = ("secret", "secret_fallbacks")


def _without_secrets(error: Any) -> Any:
    """One of a refusal's errors, its input hidden where it is or holds a secret: an error of a
    secret field, of an unknown field (a misspelt ``secret_fallback=``), or of the whole model
    (whose input is every field given)."""
    # pydantic_core's InitErrorDetails, a TypedDict (the domain imports pydantic alone)
    hidden: dict[str, Any] = {"type": error["type"], "loc": error["loc"], "input": error["input"]}
    if "ctx" in error:
        hidden["ctx"] = error["ctx"]
    field = error["loc"][0] if error["loc"] else None
    if error["type"] == "extra_forbidden" or field in _SECRET_FIELDS:
        hidden["input"] = _HIDDEN
    elif isinstance(error["input"], dict):
        hidden["input"] = {
            key: _HIDDEN if key in _SECRET_FIELDS else value
            for key, value in error["input"].items()
        }
    return hidden
