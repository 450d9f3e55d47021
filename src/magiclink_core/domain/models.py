"""Records and statuses.

Records are immutable pydantic dataclasses, with pydantic's model API (``model_validate``,
``model_dump``, ``model_copy``). A change is a new record with ``version`` one higher;
storage writes it only if the stored version is still the old one (compare-and-set), so a record
read, changed by the pure rules and written back can never overwrite a concurrent change.

Each record class names its lookups in ``unique_fields`` (at most one record per non-null value:
the storage enforces it, which is how an email address is claimed once) and ``list_fields``.
``purge_after`` says when storage may delete the record.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Literal, Self, TypeVar, cast, dataclass_transform

from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic.fields import FieldInfo

from .tokens import new_id


class VerificationStatus(StrEnum):
    """Where an attempt's emailed verification stands (the guide's ``verification.status``)."""

    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    EXPIRED = "expired"
    FAILED = "failed"
    CLIENT_MISMATCH = "client_mismatch"


class FailureReason(StrEnum):
    """Why a verification failed, for the device waiting on it (the status alone says only
    ``failed``): each way calls for its own next step."""

    CONFIRMATION_CODES = "too_many_confirmation_codes"  # typed wrong on the device with the link
    EMAIL_CODES = "too_many_email_codes"  # the emailed code, typed wrong where it was asked for
    REPLACED = "replaced"  # a newer attempt of the same client took its place
    UNDELIVERABLE = "undeliverable"  # the email could not be sent
    ADDRESS_TAKEN = "address_taken"  # another account verified the address first


class SignUpStatus(StrEnum):
    """A sign-up waits for its address to be verified, then is complete (a user and a session
    exist); one replaced by a newer sign-up of its client, or left too long, is abandoned."""

    MISSING_REQUIREMENTS = "missing_requirements"
    COMPLETE = "complete"
    ABANDONED = "abandoned"


class SignInStatus(StrEnum):
    """A sign-in waits for its first factor (the emailed link), then is complete (a session
    exists); one replaced by a newer sign-in of its client, or left too long, is abandoned."""

    NEEDS_FIRST_FACTOR = "needs_first_factor"
    COMPLETE = "complete"
    ABANDONED = "abandoned"


class SessionStatus(StrEnum):
    """A session is active until signed out (ended), revoked by its user, or timed out."""

    ACTIVE = "active"
    ENDED = "ended"
    REVOKED = "revoked"
    EXPIRED = "expired"


class AttemptKind(StrEnum):
    """What a link verifies."""

    SIGN_UP = "sign_up"
    SIGN_IN = "sign_in"
    EMAIL_ADDRESS = "email_address"


class CrossDevicePolicy(StrEnum):
    """What a click from a client other than the one that asked for the link does."""

    ALLOW = "allow"
    DENY = "deny"
    CONFIRM = "confirm"


_new = object.__new__

_CONFIG = ConfigDict(extra="forbid")
F = TypeVar("F", bound="Frozen")


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(Field,))
def frozen_model(cls: type[F]) -> type[F]:
    """Make ``cls`` an immutable, validated, keyword-only pydantic dataclass (unknown fields
    refused). Records are read on every path (a request's session check, a click), so they
    are dataclasses rather than ``BaseModel``s: ``BaseModel.__getattr__`` routes every
    attribute read of its instances through a hook that also stops the interpreter from
    specialising the read (measured: 7 % of the link path's instructions)."""
    pydantic_dataclass(frozen=True, kw_only=True, config=_CONFIG)(cls)  # the class itself
    cls.model_fields = cls.__pydantic_fields__
    return cls


class Frozen:
    """Base of the records and their parts: pydantic's model API (``model_validate``,
    ``model_dump``, ``model_copy``, ``model_fields``) on a :func:`frozen_model` dataclass."""

    model_fields: ClassVar[dict[str, FieldInfo]]
    __pydantic_fields__: ClassVar[dict[str, FieldInfo]]
    # pydantic_core's SchemaValidator and SchemaSerializer, and pydantic's private
    # DecoratorInfos (the domain imports pydantic alone)
    __pydantic_validator__: ClassVar[Any]
    __pydantic_serializer__: ClassVar[Any]
    __pydantic_decorators__: ClassVar[Any]

    @classmethod
    def model_validate(cls, obj: Any) -> Self:
        """``obj`` (a mapping of field values) checked and converted, as pydantic's."""
        return cast(Self, cls.__pydantic_validator__.validate_python(obj))

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Self:
        """A JSON document checked and converted, as pydantic's."""
        return cast(Self, cls.__pydantic_validator__.validate_json(data))

    def model_dump(self, *, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
        """Every field, nested parts as dicts; ``mode="json"``: JSON values only."""
        return cast(dict[str, Any], self.__pydantic_serializer__.to_python(self, mode=mode))

    def model_dump_json(self) -> str:
        """The JSON document :meth:`model_validate_json` reads back."""
        return cast(bytes, self.__pydantic_serializer__.to_json(self)).decode()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied. As in pydantic, ``update`` is not validated; a name
        that is not a field is refused (pydantic would add it silently)."""
        cls = type(self)
        values = copy.deepcopy(self.__dict__) if deep else self.__dict__.copy()
        if update:
            names = (_SHAPES.get(cls) or _shape(cls)).names
            if not update.keys() <= names:
                unknown = sorted(set(update) - names)
                raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
            values.update(update)
        copied = _new(cls)
        _set_dict(copied, values)
        return copied

    @classmethod
    def made(cls, values: dict[str, Any]) -> Self:
        """An instance of ``values`` this library made itself (never what it read or was sent):
        the defaults filled in, unknown or missing fields refused, types not checked. What
        storage reads, and every model with a validator of its own, still goes through
        validation."""
        shape = _SHAPES.get(cls) or _shape(cls)
        if shape.validated:
            return cls.model_validate(values)
        keys = values.keys()
        if not (keys <= shape.names and shape.required <= keys):
            return cls.model_validate(values)  # pydantic says what is missing or unknown
        filled = {**shape.template, **values}  # every field, in the declared order
        for name, factory in shape.factories:
            if name not in keys:
                filled[name] = factory()
        made = _new(cls)
        _set_dict(made, filled)
        return made


# the instance dict's descriptor, set without ``__setattr__`` (frozen: it refuses)
_set_dict = Frozen.__dict__["__dict__"].__set__


class _Shape:
    """What :meth:`Frozen.made` needs of a model class, worked out once."""

    __slots__ = ("factories", "names", "required", "template", "validated")

    def __init__(self, cls: type[Frozen]) -> None:
        fields = cls.__pydantic_fields__
        self.names = frozenset(fields)
        self.required = frozenset(n for n, f in fields.items() if f.is_required())
        # each field in order (a dump lists them so), with its default; a required field's
        # placeholder is always overwritten
        self.template = {n: None if f.is_required() else f.default for n, f in fields.items()}
        self.factories: list[tuple[str, Callable[[], Any]]] = [
            (n, cast(Callable[[], Any], f.default_factory))
            for n, f in fields.items()
            if f.default_factory is not None
        ]
        decorators = cls.__pydantic_decorators__
        self.validated = bool(
            decorators.model_validators
            or decorators.field_validators
            or decorators.validators
            or any(f.default_factory_takes_validated_data for f in fields.values())
        )


_SHAPES: dict[type[Frozen], _Shape] = {}


def _shape(cls: type[Frozen]) -> _Shape:
    shape = _SHAPES[cls] = _Shape(cls)
    return shape


@frozen_model
class RequestInfo(Frozen):
    """Where a request came from, as the host app saw it (for emails and the confirm page)."""

    user_agent: str = ""
    ip_address: str = ""
    # a human description such as "Firefox on Ubuntu", made by the web layer from the user agent
    device: str = ""

    @property
    def described(self) -> str:
        # never the raw User-Agent: its text is the client's own, and this goes into emails
        return self.device or "an unknown device"


Strategy = Literal["email_link", "email_code"]
"""How an email verifies: a link to open (anywhere), or a code to type where one asked."""


@frozen_model
class Verification(Frozen):
    """One email verification of an attempt (the guide's ``verification`` object).

    One email may carry a link, a code, or both; they are two ways to complete the same
    verification, so whichever is used first consumes both, and a newer email replaces both.

    Two codes must not be confused: ``confirmation_code`` is shown on the starting device and
    typed on another one that opened the link (number matching); the *email code* travels the
    other way, in the email, typed on the starting device. Only its keyed digest is stored.
    """

    strategy: Strategy = "email_link"  # "email_code" when the email carries no link
    status: VerificationStatus = VerificationStatus.UNVERIFIED
    expire_at: datetime
    redirect_url: str  # where a link sends its clicker ("" when the email has no link)
    link_id: str  # digest of the newest link; older links of this attempt no longer work
    confirmation_code: str  # shown only to the client that started the attempt
    requested_by: RequestInfo
    requested_at: datetime
    verified_at: datetime | None = None
    verified_at_client: str | None = None
    verified_with: Strategy | None = None
    failed_code_attempts: int = 0  # wrong confirmation codes typed on another device
    email_code_digest: str | None = None  # None when the email carries no code
    failed_email_code_attempts: int = 0
    failure_reason: FailureReason | None = None  # why, when the status is failed


@frozen_model
class FirstFactor(Frozen):
    strategy: Strategy = "email_link"
    safe_identifier: str
    email_address_id: str


@frozen_model
class Record(Frozen):
    id: str
    version: int = 1
    created_at: datetime
    updated_at: datetime
    purge_after: datetime | None = None

    table: ClassVar[str]
    id_prefix: ClassVar[str]
    unique_fields: ClassVar[tuple[str, ...]] = ()
    list_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def new(cls, now: datetime, **fields: object) -> Self:
        """A record made at ``now``: version 1, a fresh id unless ``fields`` name one."""
        # ``fields`` is this call's own dict: filled in place, not copied
        if "id" not in fields:  # a link's id is its token's digest: no draw for it
            fields["id"] = new_id(cls.id_prefix)
        fields.setdefault("created_at", now)
        fields.setdefault("updated_at", now)
        return cls.made(fields)

    def bumped(self, now: datetime, **changes: object) -> Self:
        """This record changed: ``changes`` applied, version and ``updated_at`` advanced."""
        changes["version"] = self.version + 1
        changes["updated_at"] = now
        return self.model_copy(update=changes)


@frozen_model
class Client(Record):
    """A browser or device. Owns attempts and sessions; known by its client cookie."""

    table = "clients"
    id_prefix = "client"
    unique_fields = ("token_digest",)

    token_digest: str
    sign_in_id: str | None = None
    sign_up_id: str | None = None
    last_active_at: datetime


@frozen_model
class User(Record):
    table = "users"
    id_prefix = "user"

    primary_email_address_id: str | None = None


@frozen_model
class EmailAddress(Record):
    """An address of a user. ``claimed_email`` is set (to ``email``) once verified: unique, so
    an address belongs to one user. ``user_email`` (derived: user and address) is unique too,
    so a user holds an address once, however fast "Add" is clicked twice."""

    table = "email_addresses"
    id_prefix = "idn"
    unique_fields = ("claimed_email", "user_email")
    list_fields = ("user_id", "email")

    user_id: str
    email: str
    user_email: str | None = None
    claimed_email: str | None = None
    verification: Verification | None = None
    # the client that asked for the newest verification link (owns the wait)
    client_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_user_email(cls, data: Any) -> Any:
        # derived when not given; a stored null stays null (a duplicate older rows kept)
        if isinstance(data, dict):
            if "user_email" not in data and "user_id" in data:
                return {**data, "user_email": _user_email(data)}
            return data
        # called as EmailAddress(...): pydantic passes the call's arguments (its ArgsKwargs)
        fields = getattr(data, "kwargs", None) or {}
        if "user_email" not in fields and "user_id" in fields:
            return type(data)(data.args, {**fields, "user_email": _user_email(fields)})
        return data

    @property
    def verified(self) -> bool:
        return self.claimed_email is not None


def _user_email(fields: Mapping[str, Any]) -> str:
    return f"{fields['user_id']}/{fields.get('email', '')}"


@frozen_model
class Session(Record):
    """A signed-in session on one client. ``token_digest`` is None until the client that owns it
    collects its token (a session completed from another device is issued that way).

    When the session is given a new token (``activate_session``, or a repeated click), the
    token it had is kept as ``previous_token_digest`` until ``previous_token_until``: the
    answer that carried it may still be on its way to the same browser, which keeps whichever
    cookie arrives last (see ``Settings.session_token_grace``)."""

    table = "sessions"
    id_prefix = "sess"
    unique_fields = ("token_digest", "previous_token_digest")
    list_fields = ("user_id", "client_id")

    user_id: str
    client_id: str
    token_digest: str | None = None
    previous_token_digest: str | None = None
    previous_token_until: datetime | None = None
    # the user's primary address, kept current: who is signed in, known without a read
    email_address: str = ""
    status: SessionStatus = SessionStatus.ACTIVE
    last_active_at: datetime
    expire_at: datetime  # absolute lifetime
    ended_at: datetime | None = None
    user_agent: str = ""
    ip_address: str = ""


@frozen_model
class SignUp(Record):
    table = "sign_ups"
    id_prefix = "sua"

    client_id: str
    email_address: str
    status: SignUpStatus = SignUpStatus.MISSING_REQUIREMENTS
    verification: Verification | None = None
    created_user_id: str | None = None
    created_session_id: str | None = None
    abandon_at: datetime


@frozen_model
class SignIn(Record):
    """A sign-in attempt. ``user_id`` is None for an address with no account: such an attempt
    runs exactly like any other, so nobody can tell from it whether an account exists."""

    table = "sign_ins"
    id_prefix = "sia"

    client_id: str
    identifier: str
    user_id: str | None = None
    email_address_id: str
    status: SignInStatus = SignInStatus.NEEDS_FIRST_FACTOR
    verification: Verification | None = None
    created_session_id: str | None = None
    abandon_at: datetime


@frozen_model
class Link(Record):
    """An emailed link, keyed by the digest of its token (``id``)."""

    table = "links"
    id_prefix = "link"

    attempt_kind: AttemptKind
    attempt_id: str
    client_id: str  # the client that asked for it
    expire_at: datetime
    consumed_at: datetime | None = None
    consumed_by_client: str | None = None


Attempt = SignUp | SignIn | EmailAddress
RECORD_TYPES: tuple[type[Record], ...] = (Client, User, EmailAddress, Session, SignUp, SignIn, Link)
