"""Settings refuse unsafe values when built."""

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from magiclink_core import Settings
from magiclink_core.domain.tokens import TokenPurpose, new_token
from tests.support import SECRET


def test_defaults_follow_the_issue() -> None:
    s = Settings(secret=SECRET, base_url="https://app.example.com/")
    assert s.base_url == "https://app.example.com"
    assert s.link_ttl == timedelta(minutes=10)
    assert s.cross_device.value == "confirm"
    assert s.session_idle_timeout == timedelta(days=7)
    assert s.session_lifetime == timedelta(days=30)
    assert s.enumeration_protection and not s.check_deliverability
    assert s.verify_url == "https://app.example.com/auth/v1/verify"
    # abuse resistance: a few emails per address, tens of tries per client IP, an hour
    assert (s.links_per_address, s.links_per_address_window) == (5, timedelta(minutes=10))
    for limit in ("links_per_ip", "attempts_per_ip", "confirmation_code_failures_per_ip"):
        assert getattr(s, limit) == 30
    assert s.reverification_window == timedelta(minutes=10)
    assert s.sign_up_page_url == "https://app.example.com/auth/sign-up"


@pytest.mark.parametrize(
    "bad",
    [
        {"secret": "short"},
        {"secret": [SECRET]},  # a list names secret_fallbacks
        {"secret_fallbacks": ["short"]},
        {"base_url": "ftp://app.example.com"},
        {"base_url": "app.example.com"},
        {"base_url": "http://app.example.com"},  # plain http only on localhost
        {"link_ttl": timedelta(seconds=1)},
        {"link_ttl": timedelta(days=3)},
        {"session_idle_timeout": timedelta(days=60)},
        {"cross_device": "sometimes"},
        {"allowed_redirect_origins": ["javascript:alert(1)"]},
        {"allowed_redirect_origins": ["https://a.example/path"]},
        {"confirmation_code_digits": 2},
        {"session_touch_interval": timedelta(days=7)},  # never shorter than the idle timeout
        {"wait_poll_interval": timedelta(0)},
        {"purge_grace": timedelta(seconds=-1)},
        {"verify_path": "auth/v1/verify"},
        {"verify_path": "//evil.example/v1/verify"},
        {"links_per_ip": -1},
        {"attempts_per_ip_window": timedelta(0)},
        {"confirmation_code_window": timedelta(seconds=-1)},
        {"reverification_window": timedelta(0)},
        {"sign_up_url": "//evil.example/join"},
        {"unknown_option": True},
        # the delivery worker's pauses: none would retry a failing send in a busy loop, and a
        # negative grace would crash the worker at shutdown with the unsent links left standing
        {"mail_first_retry": timedelta(0)},
        {"mail_first_retry": timedelta(seconds=-1)},
        {"mail_max_retry": timedelta(0)},  # the pause after the first retry
        {"mail_max_retry": timedelta(seconds=-1)},
        {"mail_shutdown_grace": timedelta(seconds=-5)},
        {"client_ttl": timedelta(0)},
        {"client_ttl": timedelta(days=-1)},
    ],
)
def test_unsafe_or_malformed_settings_are_refused(bad: dict[str, object]) -> None:
    options: dict[str, object] = {"secret": SECRET, "base_url": "https://app.example.com", **bad}
    with pytest.raises(ValidationError) as refused:
        Settings(**options)  # type: ignore[arg-type]
    # the error is logged with its traceback: it names the setting, never quotes a secret
    assert SECRET[:8] not in str(refused.value), str(refused.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"link_ttl": timedelta(seconds=-1)},  # a check of the whole model: its input is every field
        {"base_url": "ftp://app.example.com"},
        {"secret": "short"},
        {"secret_fallbacks": [SECRET + "old", "short"]},
        {"secret": [SECRET, SECRET + "old"]},
        {"secret_fallback": [SECRET + "older"]},  # misspelt
    ],
)
def test_a_refusal_never_carries_a_secret_in_its_error_details(bad: dict[str, object]) -> None:
    """Apps and error trackers log ``errors()`` and ``json()`` too, not only the message."""
    options: dict[str, object] = {
        "secret": SECRET,
        "secret_fallbacks": [SECRET + "old"],
        "base_url": "https://app.example.com",
        **bad,
    }
    with pytest.raises(ValidationError) as refused:
        Settings(**options)  # type: ignore[arg-type]
    details = [refused.value.json(), repr(refused.value.errors()), str(refused.value)]
    for secret in (SECRET, "short"):
        assert not any(secret in text for text in details), details
    # what was wrong is still named
    assert refused.value.errors()[0]["loc"] in {(), *((name,) for name in bad)}


def test_plain_http_is_fine_on_localhost() -> None:
    assert not Settings(secret=SECRET, base_url="http://localhost:8000").is_https


def test_the_secret_never_shows_in_repr_or_str() -> None:
    s = Settings(
        secret=SECRET, secret_fallbacks=[SECRET + "old"], base_url="https://app.example.com"
    )
    assert SECRET not in repr(s) and SECRET not in str(s)


def test_a_list_of_secrets_is_refused_naming_secret_fallbacks() -> None:
    with pytest.raises(ValidationError, match="secret_fallbacks"):
        Settings(secret=[SECRET, SECRET + "old"], base_url="https://app.example.com")  # type: ignore[arg-type]


def test_the_secret_signs_and_the_fallbacks_only_verify() -> None:
    old = Settings(secret=SECRET + "old", base_url="https://app.example.com")
    rotated = Settings(
        secret=SECRET, secret_fallbacks=[SECRET + "old"], base_url="https://app.example.com"
    )
    token = new_token(TokenPurpose.SESSION)
    signed_before = old.keyring.digest(token, TokenPurpose.SESSION)
    assert rotated.keyring.digest(token, TokenPurpose.SESSION) != signed_before
    assert signed_before in rotated.keyring.candidate_digests(token, TokenPurpose.SESSION)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "email_verification": "code",
            "links_per_address": 0,
            "links_per_ip": 0,
            "allowed_redirect_origins": ["https://shop.example.org"],
            "cross_device": "deny",
            "app_name": "Shop",
        },
        {"email_verification": "link", "links_per_address": 0, "links_per_ip": 3},
    ],
)
def test_link_terms_say_what_the_settings_say(overrides: dict[str, object]) -> None:
    """What the link flow reads once (``Settings.link_terms``) is the settings' own values."""
    settings = Settings(secret=SECRET, base_url="https://app.example.org", **overrides)
    terms = settings.link_terms
    for name in terms.__slots__:
        if name == "links_limited":
            continue
        value = getattr(settings, name)
        assert getattr(terms, name) == (tuple(value) if isinstance(value, list) else value), name
    assert terms.links_limited == bool(settings.links_per_address or settings.links_per_ip)


MAIL_DURATIONS = st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=2))


@given(first=MAIL_DURATIONS, most=MAIL_DURATIONS, grace=MAIL_DURATIONS)
def test_mail_retry_pauses_are_positive_and_the_grace_is_not_negative(
    first: timedelta, most: timedelta, grace: timedelta
) -> None:
    """The delivery worker sleeps ``mail_first_retry``, doubling up to ``mail_max_retry``,
    between tries of a failing send, and waits ``mail_shutdown_grace`` at shutdown: settings
    that would make it spin or crash are refused when built, naming the field."""
    options = {"mail_first_retry": first, "mail_max_retry": most, "mail_shutdown_grace": grace}
    sound = first > timedelta(0) and most > timedelta(0) and grace >= timedelta(0)
    if sound:
        built = Settings(secret=SECRET, base_url="https://app.example.com", **options)
        assert (built.mail_first_retry, built.mail_max_retry) == (first, most)
        assert built.mail_shutdown_grace == grace
    else:
        with pytest.raises(ValidationError, match="mail_"):
            Settings(secret=SECRET, base_url="https://app.example.com", **options)
