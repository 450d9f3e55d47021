"""Escaping a per-IP limit by lying about the client address. The client IP is the socket's
peer unless that peer is a configured trusted proxy; then it is read from the one header those
proxies set (``X-Forwarded-For`` or RFC 7239 ``Forwarded``), from the right, stopping at the
first address that is not a trusted proxy. So a header forged by an untrusted peer is ignored,
and a forged prefix sent through a trusted proxy is never reached."""

from __future__ import annotations

import ipaddress
from itertools import count
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magiclink_asgi import TrustedProxies

from ._http import make_app, start_sign_in

pytestmark = pytest.mark.anyio
PROXY = "10.0.0.5"


def forged(header: str, fake: str, real: str | None = None) -> dict[str, str]:
    """``header`` naming ``fake`` as the client (and ``real`` after it, as a proxy appends)."""
    hops = [fake] if real is None else [fake, real]
    if header == "forwarded":
        return {header: ", ".join(f'for="{h}"' if ":" in h else f"for={h}" for h in hops)}
    return {header: ", ".join(hops)}


@pytest.mark.parametrize("header", ["x-forwarded-for", "forwarded"])
@pytest.mark.parametrize("trusted", [(), (PROXY,)], ids=["no-proxies", "another-proxy"])
async def test_a_header_forged_by_an_untrusted_peer_does_not_escape_the_limit(
    header: str, trusted: tuple[str, ...]
) -> None:
    app = make_app(
        attempts_per_ip=3,
        middleware={"trusted_proxies": trusted, "proxy_header": header},
    )
    fakes = (f"198.51.100.{n}" for n in count(1))
    statuses = []
    for _ in range(5):  # a new lie on every request
        async with app.browser("203.0.113.7", forged(header, next(fakes))) as attacker:
            statuses.append((await start_sign_in(attacker, "ann@example.org")).status_code)
    assert statuses == [200, 200, 200, 429, 429]
    assert {e.ip_address for e in app.events} == {"203.0.113.7"}


@pytest.mark.parametrize("header", ["x-forwarded-for", "forwarded"])
async def test_a_prefix_spoofed_through_a_trusted_proxy_is_never_reached(header: str) -> None:
    app = make_app(
        attempts_per_ip=3, middleware={"trusted_proxies": ["10.0.0.0/24"], "proxy_header": header}
    )
    statuses = []
    for n in range(5):  # the client lies on the left; the proxy appends the real address
        sent = forged(header, f"198.51.100.{n}", "203.0.113.7")
        async with app.browser(PROXY, sent) as attacker:
            statuses.append((await start_sign_in(attacker, "ann@example.org")).status_code)
    assert statuses == [200, 200, 200, 429, 429]
    real = forged(header, "192.0.2.44")
    async with app.browser(PROXY, real) as person:  # another visitor behind the same proxy
        assert (await start_sign_in(person, "ann@example.org")).status_code == 200
    assert {e.ip_address for e in app.events} == {"203.0.113.7"}


@pytest.mark.parametrize("header", ["x-forwarded-for", "forwarded"])
async def test_the_other_header_is_not_believed(header: str) -> None:
    other = "forwarded" if header == "x-forwarded-for" else "x-forwarded-for"
    app = make_app(
        attempts_per_ip=2, middleware={"trusted_proxies": [PROXY], "proxy_header": header}
    )
    statuses = []
    for n in range(3):  # the proxy sets `header`; the client's own `other` passes through
        sent = {**forged(header, "203.0.113.7"), **forged(other, f"198.51.100.{n}")}
        async with app.browser(PROXY, sent) as attacker:
            statuses.append((await start_sign_in(attacker, "ann@example.org")).status_code)
    assert statuses == [200, 200, 429]


async def test_an_ipv6_client_cannot_rotate_through_its_network() -> None:
    app = make_app(attempts_per_ip=3)
    statuses = []
    for n in range(5):  # one subscriber's /64 holds 2**64 addresses
        async with app.browser(f"2001:db8:1:2::{n + 1:x}") as attacker:
            statuses.append((await start_sign_in(attacker, "ann@example.org")).status_code)
    assert statuses == [200, 200, 200, 429, 429]
    async with app.browser("2001:db8:1:3::1") as neighbour:  # another /64
        assert (await start_sign_in(neighbour, "ann@example.org")).status_code == 200


def scope(peer: str, *headers: tuple[str, str]) -> dict[str, Any]:
    return {
        "client": (peer, 1234),
        "headers": [(k.encode(), v.encode("latin-1")) for k, v in headers],
    }


FORWARDED = [
    # (header line(s), the client IP read behind the trusted proxy 10.0.0.5)
    (["for=192.0.2.60;proto=http;by=203.0.113.43"], "192.0.2.60"),
    (['for="[2001:db8:cafe::17]:4711"'], "2001:db8:cafe::17"),
    (['For="[2001:db8:cafe::17]"'], "2001:db8:cafe::17"),
    (['for="192.0.2.43:47011"'], "192.0.2.43"),
    (["for=192.0.2.43, for=198.51.100.17"], "198.51.100.17"),
    (["for=192.0.2.43,for=198.51.100.17;by=10.0.0.5"], "198.51.100.17"),
    (["for=192.0.2.43", "for=198.51.100.17"], "198.51.100.17"),  # two header lines
    (["for=198.51.100.17, for=10.0.0.9"], "198.51.100.17"),  # a second trusted proxy
    (['for="_gazonk"'], PROXY),  # obfuscated: the nearest address known is the proxy
    (["for=unknown"], PROXY),
    (["proto=https"], PROXY),  # no for=
    (['for="1.2.3.4, for=5.6.7.8"'], PROXY),  # a comma inside quotes: one junk node
    (['for="1.2.3.4\\"";x=y, for=198.51.100.17'], "198.51.100.17"),
    (['for="unterminated', "for=198.51.100.17"], "198.51.100.17"),  # the proxy's own line
    (['for="unterminated, for=198.51.100.17'], PROXY),  # swallowed: nothing believed
    (["for=192.0.2.1;for=192.0.2.2"], PROXY),  # one parameter twice: malformed
    (["for=2001:db8::1"], "2001:db8::1"),  # unquoted IPv6, as some proxies send it
    (["for=[2001:db8::1]:80"], "2001:db8::1"),
    (['for="[1.2.3.4]"'], PROXY),  # brackets hold IPv6 only
    (['for="[2001:db8::1]junk"'], PROXY),
    (["for=192.0.2.1:99999999"], PROXY),
    ([""], PROXY),
    ([",,for=192.0.2.9,,"], "192.0.2.9"),  # empty list elements are allowed
]


@pytest.mark.parametrize(("lines", "client"), FORWARDED)
def test_forwarded_headers_are_parsed_with_care(lines: list[str], client: str) -> None:
    proxies = TrustedProxies(["10.0.0.0/24"], "Forwarded")
    request = scope(PROXY, *(("forwarded", line) for line in lines))
    assert proxies.client_ip(request) == client


X_FORWARDED_FOR = [
    ("192.0.2.60", "192.0.2.60"),
    ("198.51.100.1, 192.0.2.60", "192.0.2.60"),
    ("192.0.2.60:5555", "192.0.2.60"),
    ("[2001:db8::1]:5555", "2001:db8::1"),
    ("2001:db8::1", "2001:db8::1"),
    ("198.51.100.1, garbage", PROXY),
    ("198.51.100.1, 10.0.0.7", "198.51.100.1"),
    ("10.0.0.7", "10.0.0.7"),  # every hop trusted: the first is the client
]


@pytest.mark.parametrize(("value", "client"), X_FORWARDED_FOR)
def test_x_forwarded_for_is_read_from_the_right(value: str, client: str) -> None:
    proxies = TrustedProxies(["10.0.0.0/24"])
    assert proxies.client_ip(scope(PROXY, ("x-forwarded-for", value))) == client


@given(header=st.sampled_from(["x-forwarded-for", "forwarded"]), value=st.text(max_size=80))
def test_whatever_an_untrusted_peer_sends_its_own_address_is_used(header: str, value: str) -> None:
    proxies = TrustedProxies([PROXY], header)
    sent = value.encode("utf-8").decode("latin-1")
    assert proxies.client_ip(scope("203.0.113.7", (header, sent))) == "203.0.113.7"


@given(header=st.sampled_from(["x-forwarded-for", "forwarded"]), value=st.text(max_size=80))
def test_a_trusted_proxy_s_header_never_breaks_the_reading(header: str, value: str) -> None:
    proxies = TrustedProxies([PROXY], header)
    sent = value.encode("utf-8").decode("latin-1")
    ipaddress.ip_address(proxies.client_ip(scope(PROXY, (header, sent))))  # an address


def test_proxies_and_headers_are_checked_when_configured() -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        TrustedProxies(["proxy.internal"])
    with pytest.raises(ValueError, match="proxy_header"):
        TrustedProxies([PROXY], "X-Real-IP")
