"""Rate limits, as data: which counter a request spends, how many it may, over what window.

Every limit is a counter in the configured storage (``Storage.increment``), so it holds across
instances. Limits are per address (what reaches one mailbox) or per client IP (what one network
may ask for, across addresses). An IPv6 client counts by its /64 network: one subscriber is
usually given a whole /64, and would otherwise rotate through 2**64 addresses to escape a limit;
an IPv4-mapped IPv6 address counts as its IPv4 address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import timedelta

from .settings import Settings

IPV6_PREFIX = 64


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``limit`` per ``window`` on the counter ``key``. ``name`` is the setting that
    sets it (also the ``reason`` of the ``rate_limited`` event)."""

    name: str
    key: str
    limit: int
    window: timedelta
    reason: str  # what the person is told, before "Try again in ..."


def ip_bucket(ip_address: str) -> str:
    """What one client IP counts as: an IPv4 address itself, an IPv6 address its /64 network
    (``2001:db8:1:2::/64``); anything that is not an IP address, as it is."""
    try:
        ip = ipaddress.ip_address(ip_address)
    except ValueError:
        return ip_address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


def _per_ip(
    name: str, what: str, ip_address: str, limit: int, window: timedelta, reason: str
) -> list[Limit]:
    if not ip_address or not limit:  # no IP known (a script, a test), or the limit is off
        return []
    return [Limit(name, f"{what}:ip:{ip_bucket(ip_address)}", limit, window, reason)]


def attempts(settings: Settings, ip_address: str) -> list[Limit]:
    """Sign-ups and sign-ins started from one client IP (every try counts)."""
    return _per_ip(
        "attempts_per_ip",
        "attempts",
        ip_address,
        settings.attempts_per_ip,
        settings.attempts_per_ip_window,
        "Too many sign-ins and sign-ups were started from your network.",
    )


def links_to_address(settings: Settings, email: str) -> list[Limit]:
    """Verification emails handed to the mail server for one address."""
    if not settings.links_per_address:
        return []
    return [
        Limit(
            "links_per_address",
            f"links:{email}",
            settings.links_per_address,
            settings.links_per_address_window,
            "Too many emails were sent to this address lately.",
        )
    ]


def links_from_ip(settings: Settings, ip_address: str) -> list[Limit]:
    """Verification emails asked for from one client IP, across addresses (every ask counts,
    sent or not)."""
    return _per_ip(
        "links_per_ip",
        "links",
        ip_address,
        settings.links_per_ip,
        settings.links_per_ip_window,
        "Too many emails were asked for from your network.",
    )


def wrong_email_codes(settings: Settings, email: str, ip_address: str) -> list[Limit]:
    """Wrong email codes for one address (across its emails) and from one client IP."""
    limits: list[Limit] = []
    if settings.email_code_failures_per_address:
        limits.append(
            Limit(
                "email_code_failures_per_address",
                f"email_code:address:{email}",
                settings.email_code_failures_per_address,
                settings.email_code_window,
                "Too many wrong codes were typed for this address.",
            )
        )
    return limits + _per_ip(
        "email_code_failures_per_ip",
        "email_code",
        ip_address,
        settings.email_code_failures_per_ip,
        settings.email_code_window,
        "Too many wrong codes were typed from your network.",
    )


def wrong_confirmation_codes(settings: Settings, ip_address: str) -> list[Limit]:
    """Wrong confirmation codes (the code typed on the device that opened the link) from one
    client IP, across links."""
    return _per_ip(
        "confirmation_code_failures_per_ip",
        "confirmation_code",
        ip_address,
        settings.confirmation_code_failures_per_ip,
        settings.confirmation_code_window,
        "Too many wrong codes were typed from your network.",
    )
