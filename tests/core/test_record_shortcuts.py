"""The short ways records are made and copied on the hot path give what pydantic's long ways do."""

import pickle
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, ValidationError

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
    # every field counts as set, as in a record read back from storage (every column given)
    assert made.model_fields_set == validated.model_fields_set == set(SignIn.model_fields)
    assert made.status is SignInStatus.NEEDS_FIRST_FACTOR and made.version == 1
    assert made.model_dump_json() == validated.model_dump_json()


def test_made_refuses_unknown_and_missing_fields() -> None:
    with pytest.raises(ValidationError):
        SignIn.new(NOW, **SIGN_IN, colour="red")
    with pytest.raises(ValidationError):
        SignIn.new(NOW, client_id="client_1")


def test_a_model_with_a_validator_of_its_own_is_still_validated() -> None:
    address = EmailAddress.new(NOW, user_id="user_1", email="ann@example.org")
    assert address.user_email == "user_1/ann@example.org"


def test_a_copy_is_pydantics_copy() -> None:
    session = Session.new(
        NOW, user_id="u", client_id="c", last_active_at=NOW, expire_at=NOW + timedelta(days=1)
    )
    ours = session.bumped(NOW, ip_address="127.0.0.1")
    theirs = BaseModel.model_copy(
        session, update={"ip_address": "127.0.0.1", "version": 2, "updated_at": NOW}
    )
    assert ours == theirs and ours.model_fields_set == theirs.model_fields_set
    assert ours.version == 2 and session.version == 1 and session.ip_address == ""
    plain = session.model_copy()
    assert plain == session and plain is not session
    assert plain.model_fields_set == session.model_fields_set
    # a fields set read from storage is the record's own: its copy gets its own too
    read = Session.model_validate(session.model_dump())
    assert read.model_copy().model_fields_set is not read.model_fields_set


def test_the_fields_set_records_share_stays_whole() -> None:
    # records made here share one fields set (every field): pydantic's own copy with an update,
    # a deep copy, a pickle round trip and a refused assignment all work and leave it whole
    session = Session.new(
        NOW, user_id="u", client_id="c", last_active_at=NOW, expire_at=NOW + timedelta(days=1)
    )
    shared = set(session.model_fields_set)
    theirs = BaseModel.model_copy(session, update={"ip_address": "127.0.0.1"})
    deep = session.model_copy(update={"ip_address": "10.0.0.1"}, deep=True)
    unpickled = pickle.loads(pickle.dumps(session))
    assert theirs.ip_address == "127.0.0.1" and deep.ip_address == "10.0.0.1"
    assert unpickled == session
    with pytest.raises(ValidationError):
        session.ip_address = "10.0.0.2"  # type: ignore[misc]
    later = Session.new(NOW, user_id="v", client_id="d", last_active_at=NOW, expire_at=NOW)
    assert session.model_fields_set == later.model_fields_set == shared


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
