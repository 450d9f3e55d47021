"""Where a request comes from: its client IP address (behind trusted proxies) and a readable
description of its device, for emails, the confirmation page and the sessions list."""

from __future__ import annotations

import ipaddress

from .http import Scope, header


def describe_device(user_agent: str) -> str:
    """ "Firefox 120 on Ubuntu", from a User-Agent, by ua-parser; "" when nothing is known."""
    if not user_agent:
        return ""
    import ua_parser

    result = ua_parser.parse(user_agent[:1024])
    browser = ""
    if result.user_agent is not None and result.user_agent.family != "Other":
        browser = result.user_agent.family
        if result.user_agent.major:
            browser += f" {result.user_agent.major}"
    system = ""
    if result.os is not None and result.os.family != "Other":
        system = result.os.family
    if browser and system:
        return f"{browser} on {system}"
    return browser or system


def client_ip(scope: Scope, trusted_proxies: frozenset[str]) -> str:
    """The peer's address; behind a trusted proxy, the nearest untrusted X-Forwarded-For hop."""
    peer = scope.get("client")
    ip = str(peer[0]) if peer else ""
    if ip not in trusted_proxies:
        return ip
    forwarded = header(scope, "x-forwarded-for")
    if not forwarded:
        return ip
    for hop in reversed([h.strip() for h in forwarded.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return ip
        if hop not in trusted_proxies:
            return hop
    return ip
