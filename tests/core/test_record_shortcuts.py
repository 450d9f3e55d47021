"""Records: the short ways they are made and copied on the hot path give what validation gives,
and they stay immutable, checked values."""

import pickle
from dataclasses import FrozenInstanceError
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from magiclink_core.domain.models import (
    EmailAddress,
    Link,
    RequestInfo,
    Session,
    SignIn,
    SignInStatus,
    Verification,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SIGN_IN = {
    "client_id": "client_1",
    "identifier": "ann@example.org",
    "email_address_id": "idn_1",
    "abandon_at": NOW + timedelta(hours=1),
}


def test_made_is_what_validation_makes() -> None:
    made = SignIn.new(NOW, **SIGN_IN)
    validated = SignIn.model_validate(made.model_dump())
    assert made == validated
    assert made.status is SignInStatus.NEEDS_FIRST_FACTOR and made.version == 1
    assert made.model_dump_json() == validated.model_dump_json()
    assert SignIn.model_validate_json(made.model_dump_json()) == made
    # the same fields in the same order as the class declares them, whichever way it was made
    assert list(made.__dict__) == list(validated.__dict__) == list(SignIn.model_fields)


def test_made_refuses_unknown_and_missing_fields() -> None:
    with pytest.raises(ValidationError):
        SignIn.new(NOW, **SIGN_IN, colour="red")
    with pytest.raises(ValidationError):
        SignIn.new(NOW, client_id="client_1")


def test_a_model_with_a_validator_of_its_own_is_still_validated() -> None:
    address = EmailAddress.new(NOW, user_id="user_1", email="ann@example.org")
    assert address.user_email == "user_1/ann@example.org"


def test_a_copy_changes_the_copy_only() -> None:
    session = Session.new(
        NOW, user_id="u", client_id="c", last_active_at=NOW, expire_at=NOW + timedelta(days=1)
    )
    ours = session.bumped(NOW + timedelta(seconds=1), ip_address="127.0.0.1")
    assert ours == Session.model_validate(
        {
            **session.model_dump(),
            "ip_address": "127.0.0.1",
            "version": 2,
            "updated_at": NOW + timedelta(seconds=1),
        }
    )
    assert session.version == 1 and session.ip_address == "" and session.updated_at == NOW
    plain = session.model_copy()
    assert plain == session and plain is not session


def test_records_are_immutable_values() -> None:
    session = Session.new(
        NOW, user_id="u", client_id="c", last_active_at=NOW, expire_at=NOW + timedelta(days=1)
    )
    with pytest.raises(FrozenInstanceError):
        session.ip_address = "10.0.0.2"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del session.ip_address  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(session)) == session
    assert hash(session) == hash(session.model_copy())
    assert session != session.bumped(NOW)


def test_records_are_made_with_keywords_and_checked() -> None:
    with pytest.raises(ValidationError, match="positional"):
        RequestInfo("Firefox")  # type: ignore[misc]
    with pytest.raises(ValidationError):
        RequestInfo(device=3)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        RequestInfo(colour="red")  # type: ignore[call-arg]
    address = EmailAddress(
        id="idn_1", created_at=NOW, updated_at=NOW, user_id="user_1", email="ann@example.org"
    )
    assert address.user_email == "user_1/ann@example.org"  # its validator runs here too


def test_attribute_reads_take_no_hook() -> None:
    # the reason records are dataclasses: a class with __getattr__ (pydantic's BaseModel) sends
    # every attribute read through it, and the interpreter cannot specialise such reads
    for kind in (Session, SignIn, Link, Verification, RequestInfo):
        assert not hasattr(kind, "__getattr__"), kind


def test_a_copy_refuses_a_name_that_is_not_a_field() -> None:
    link = Link.new(NOW, attempt_kind="sign_in", attempt_id="sia_1", client_id="c", expire_at=NOW)
    with pytest.raises(TypeError, match="consumed"):
        link.model_copy(update={"consumed": NOW})


def test_a_deep_copy_still_copies_deeply() -> None:
    verification = Verification(
        expire_at=NOW,
        redirect_url="",
        link_id="l",
        confirmation_code="123456",
        requested_by=RequestInfo(device="Firefox"),
        requested_at=NOW,
    )
    deep = verification.model_copy(deep=True)
    assert deep == verification and deep.requested_by is not verification.requested_by
