"""Settings refuse unsafe values when built."""

from datetime import timedelta

import pytest
from pydantic import ValidationError

from magiclink_core import Settings
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


@pytest.mark.parametrize(
    "bad",
    [
        {"secret": "short"},
        {"secret": []},
        {"secret": [SECRET, "short"]},
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
        {"unknown_option": True},
    ],
)
def test_unsafe_or_malformed_settings_are_refused(bad: dict[str, object]) -> None:
    options: dict[str, object] = {"secret": SECRET, "base_url": "https://app.example.com", **bad}
    with pytest.raises(ValidationError):
        Settings(**options)  # type: ignore[arg-type]


def test_plain_http_is_fine_on_localhost() -> None:
    assert not Settings(secret=SECRET, base_url="http://localhost:8000").is_https


def test_the_secret_never_shows_in_repr_or_str() -> None:
    s = Settings(secret=[SECRET, SECRET + "old"], base_url="https://app.example.com")
    assert SECRET not in repr(s) and SECRET not in str(s)
