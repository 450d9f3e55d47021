"""Where a request comes from: its client IP address (behind trusted proxies) and a readable
description of its device, for emails, the confirmation page and the sessions list."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .http import Scope

# the only words a device description may hold: a parser's family can echo whatever a client
# wrote in its User-Agent ("Secure your account at https://…"), and the description goes into
# the victim's email and onto the confirmation page. What ua-parser calls a family -> its name.
BROWSERS: dict[str, str] = {
    "Chrome": "Chrome",
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Chrome",
    "Chromium": "Chromium",
    "HeadlessChrome": "Chrome",
    "Firefox": "Firefox",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Firefox Focus": "Firefox",
    "Safari": "Safari",
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari",
    "Edge": "Edge",
    "Edge Mobile": "Edge",
    "Opera": "Opera",
    "Opera Mobile": "Opera",
    "Opera Mini": "Opera Mini",
    "Samsung Internet": "Samsung Internet",
    "Brave": "Brave",
    "Vivaldi": "Vivaldi",
    "Yandex Browser": "Yandex Browser",
    "UC Browser": "UC Browser",
    "DuckDuckGo Mobile": "DuckDuckGo",
    "IE": "Internet Explorer",
    "IE Mobile": "Internet Explorer",
    "Electron": "Electron",
}
SYSTEMS: dict[str, str] = {
    "Windows": "Windows",
    "Mac OS X": "macOS",
    "iOS": "iOS",
    "iPadOS": "iPadOS",
    "Android": "Android",
    "Linux": "Linux",
    "Ubuntu": "Ubuntu",
    "Fedora": "Fedora",
    "Debian": "Debian",
    "Chrome OS": "ChromeOS",
    "FreeBSD": "FreeBSD",
    "HarmonyOS": "HarmonyOS",
}
UNKNOWN_BROWSER = "an unknown browser"


def describe_device(user_agent: str) -> str:
    """ "Firefox 120 on Ubuntu", from a User-Agent, by ua-parser; "" when nothing is known.

    Only names from :data:`BROWSERS` and :data:`SYSTEMS` and a version number of at most four
    digits are shown; anything else is "an unknown browser" (or left out), so no text of the
    client's own choosing reaches an email or a page.
    """
    if not user_agent:
        return ""
    import ua_parser

    result = ua_parser.parse(user_agent[:1024])
    browser = ""
    if result.user_agent is not None:
        browser = BROWSERS.get(result.user_agent.family, "")
        major = result.user_agent.major or ""
        if browser and major.isascii() and major.isdigit() and len(major) <= 4:
            browser += f" {major}"
    system = SYSTEMS.get(result.os.family, "") if result.os is not None else ""
    if system:
        return f"{browser or UNKNOWN_BROWSER} on {system}"
    return browser


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
PROXY_HEADERS = ("x-forwarded-for", "forwarded")


class TrustedProxies:
    """Which peers may say who their client is, and in which header.

    Without trusted proxies the client IP is the socket's peer, whatever the headers say. With
    them, and a request from one of them, the header (``X-Forwarded-For``, or the standard
    ``Forwarded`` of RFC 7239) is read from the right: each proxy appends the address it was
    connected from, so the first address from the right that is not a trusted proxy is the
    client; anything left of it was written by the client and is ignored. A hop that is not an
    address (``unknown``, an obfuscated ``_name``, a malformed entry) ends the walk at the
    nearest trusted proxy, so a forged header never moves a request to another address.

    :param proxies: addresses or networks (``10.0.0.0/8``, ``2001:db8::/32``) of the proxies.
    :param header: the header the proxies set: ``X-Forwarded-For`` or ``Forwarded``. Only one is
        read: a proxy that sets one passes the other through from the client unchanged.
    :raises ValueError: a proxy that is not an address or network, or another header.
    """

    def __init__(self, proxies: Iterable[str] = (), header: str = "X-Forwarded-For") -> None:
        try:
            self.networks = tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies)
        except ValueError as exc:
            raise ValueError(f"trusted_proxies takes IP addresses or networks: {exc}") from None
        self.header = header.lower()
        if self.header not in PROXY_HEADERS:
            raise ValueError("proxy_header must be 'X-Forwarded-For' or 'Forwarded'")

    def trusts(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def client_ip(self, scope: Scope) -> str:
        """The client's IP address as text ("" when the server knows no peer)."""
        peer = scope.get("client")
        raw = str(peer[0]) if peer else ""
        address = _address(raw)
        if not self.trusts(address):
            return raw if address is None else str(address)
        nearest = str(address)
        for hop in reversed(self._hops(scope)):
            if hop is None:
                return nearest
            if not self.trusts(hop):
                return str(hop)
            nearest = str(hop)
        return nearest

    def _hops(self, scope: Scope) -> list[IPAddress | None]:
        """The addresses the header lists, oldest first (each header line parsed alone)."""
        name = self.header.encode()
        hops: list[IPAddress | None] = []
        for key, value in scope.get("headers", ()):
            if key.lower() != name:
                continue
            line = bytes(value).decode("latin-1")
            if self.header == "forwarded":
                hops += forwarded_for(line)
            else:
                hops += [_node(hop) for hop in line.split(",") if hop.strip()]
        return hops


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _node(text: str) -> IPAddress | None:
    """An address from a forwarded node: ``192.0.2.1``, ``192.0.2.1:8080``, ``2001:db8::1``,
    ``[2001:db8::1]`` or ``[2001:db8::1]:8080``; None for anything else (``unknown``,
    ``_hidden``, junk)."""
    node = text.strip()
    if node.startswith("["):
        end = node.find("]")
        rest = node[end + 1 :] if end > 0 else "x"
        if rest and not (rest.startswith(":") and _port(rest[1:])):
            return None
        address = _address(node[1:end])
        return address if isinstance(address, ipaddress.IPv6Address) else None
    host, colon, port = node.partition(":")
    if colon and ":" not in port:  # one colon: an IPv4 address and its port
        address = _address(host) if _port(port) else None
        return address if isinstance(address, ipaddress.IPv4Address) else None
    return _address(node)


def _port(text: str) -> bool:
    """RFC 7239 node-port: a number, or an obfuscated ``_name``."""
    return (text.isascii() and text.isdigit() and len(text) <= 5) or (
        text.startswith("_") and len(text) > 1 and all(c.isalnum() or c in "._-" for c in text)
    )


_DELIMITERS = frozenset(',;" \t')
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def forwarded_for(line: str) -> list[IPAddress | None]:
    """The ``for=`` address of each element of one ``Forwarded`` header line (RFC 7239), in
    order: None for an element without one or whose node is not an address. Values may be
    tokens or quoted strings (with backslash escapes, and commas or semicolons inside); a line
    that does not parse is one unknown hop, so nothing the client wrote is believed (each line
    is parsed alone: a client's unterminated quote cannot swallow a proxy's own line)."""
    elements = _elements(line)
    if elements is None:
        return [None]
    return [_node(element["for"]) if "for" in element else None for element in elements]


def _elements(line: str) -> list[dict[str, str]] | None:
    """``for=a;proto=b, for=c`` as ``[{"for": "a", "proto": "b"}, {"for": "c"}]``; None when
    malformed (an unterminated quote, a pair without ``=``, a parameter given twice)."""
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    i, n = 0, len(line)

    def skip_spaces(j: int) -> int:
        while j < n and line[j] in " \t":
            j += 1
        return j

    while True:
        i = skip_spaces(i)
        if i < n and line[i] == ",":  # an empty element (allowed by the list syntax)
            i += 1
            continue
        if i >= n:
            break
        start = i
        while i < n and line[i] in _TOKEN_CHARS:
            i += 1
        name = line[start:i].lower()
        if not name or i >= n or line[i] != "=" or name in current:
            return None
        i += 1
        if i < n and line[i] == '"':
            value, i = _quoted(line, i)
            if value is None:
                return None
        else:  # a token; leniently, anything up to a delimiter, for proxies that send an
            # IPv6 node unquoted (``for=2001:db8::1``, ``for=[2001:db8::1]:80``)
            start = i
            while i < n and line[i] not in _DELIMITERS:
                i += 1
            value = line[start:i]
        current[name] = value
        i = skip_spaces(i)
        if i < n and line[i] == ";":
            i += 1
            continue
        elements.append(current)
        current = {}
        if i < n and line[i] != ",":
            return None
        i += 1
    if current:
        elements.append(current)
    return elements


def _quoted(line: str, i: int) -> tuple[str | None, int]:
    """The quoted string starting at ``line[i]`` (a ``"``), unescaped, and where it ends."""
    chars: list[str] = []
    i += 1
    while i < len(line):
        char = line[i]
        if char == "\\":
            if i + 1 >= len(line):
                return None, i
            chars.append(line[i + 1])
            i += 2
        elif char == '"':
            return "".join(chars), i + 1
        else:
            chars.append(char)
            i += 1
    return None, i
