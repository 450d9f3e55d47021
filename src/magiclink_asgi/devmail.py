"""The development mailbox: every email the app sent, readable in a browser, each with its link
and the code it carries (``EmailMessage.email_code``, typed on the device that asked).

It shows sign-in links and codes, so it is for a developer's own machine only. It is off unless
asked for (``MagicLinkMiddleware(..., dev_mailbox=True)``), and it refuses to start unless the
app's ``base_url`` is on localhost (``localhost``, ``127.0.0.1``, ``::1``) and the mailer keeps
its messages (``MemoryMailer`` or anything with an ``outbox`` list). Each request must also come
from a loopback address to a loopback ``Host``; anything else gets a 404."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from magiclink_core import EmailMessage, MagicLinks

from . import security
from .http import Response, header, html_response, text_response

__all__ = ["DevMailbox", "DevMailboxRefused", "is_loopback_host"]

_LINK = re.compile(r"https?://[^\s<>\"')\]]+")
Page = Callable[..., Response]


class DevMailboxRefused(RuntimeError):
    """The development mailbox was asked for where it must not run."""


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP address (``127.0.0.0/8``, ``::1``)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DevMailbox:
    """Reads the outbox of ``magiclinks.mailer``.

    :raises DevMailboxRefused: the app is not on localhost, or the mailer keeps no outbox.
    """

    def __init__(self, magiclinks: MagicLinks) -> None:
        host = urlsplit(magiclinks.settings.base_url).hostname or ""
        if not is_loopback_host(host):
            raise DevMailboxRefused(
                f"the development mailbox shows sign-in links, so it runs only on localhost; "
                f"base_url is {magiclinks.settings.base_url!r}. Turn dev_mailbox off."
            )
        outbox = getattr(magiclinks.mailer, "outbox", None)
        if not isinstance(outbox, list):
            raise DevMailboxRefused(
                "the development mailbox reads the mailer's outbox: use "
                "magiclink_core.mailers.MemoryMailer (or a mailer with an `outbox` list)"
            )
        self._outbox: list[EmailMessage] = outbox
        self._verify_url = magiclinks.settings.verify_url + "?"

    def _links(self, message: EmailMessage) -> list[str]:
        """The email's verification links (not any other address it names, such as the sign-up
        page of a "no account" email, which opens no flow)."""
        return [link for link in _LINK.findall(message.text) if link.startswith(self._verify_url)]

    @property
    def messages(self) -> Sequence[EmailMessage]:
        return self._outbox

    def allowed(self, scope: MutableMapping[str, Any]) -> bool:
        """Whether this request comes from, and is addressed to, this machine."""
        client = scope.get("client")
        if client and not is_loopback_host(str(client[0])):
            return False
        host = header(scope, "host") or ""
        if host:
            hostname = urlsplit(f"//{host}").hostname or ""
            if not is_loopback_host(hostname):
                return False
        return True

    def handle(self, scope: MutableMapping[str, Any], subpath: str, page: Page) -> Response:
        """Answer ``GET {prefix}/dev/mailbox{subpath}``; ``page`` renders a hosted page."""
        if not self.allowed(scope):
            return text_response("Not found", 404)
        parts = [p for p in subpath.split("/") if p]
        if not parts:
            return page(
                "pages/mailbox.html", scope, title="Development mailbox", messages=self._listing()
            )
        if not parts[0].isdigit() or not 1 <= int(parts[0]) <= len(self._outbox) or len(parts) > 2:
            return page("pages/not_found.html", scope, title="No such email", status=404)
        number = int(parts[0])
        message = self._outbox[number - 1]
        if parts[1:] == ["html"]:
            # the email's own HTML, shown in a sandboxed frame; links open in a new tab
            html = message.html.replace("<head>", '<head><base target="_blank">', 1)
            if "<base " not in html:
                html = '<base target="_blank">' + html
            return html_response(html).defaults(security.MAILBOX_EMAIL)
        if parts[1:]:
            return page("pages/not_found.html", scope, title="No such email", status=404)
        return page(
            "pages/mailbox_message.html",
            scope,
            title=message.subject,
            number=number,
            message=message,
            links=self._links(message),
        )

    def _listing(self) -> list[dict[str, Any]]:
        return [
            {
                "number": n,
                "to": m.to,
                "subject": m.subject,
                "kind": m.kind,
                "has_link": bool(self._links(m)),
                "email_code": m.email_code,
            }
            for n, m in reversed(list(enumerate(self._outbox, start=1)))
        ]
