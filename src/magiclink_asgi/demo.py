"""The demo app behind ``magiclink demo``: a small Starlette app protected by the middleware.

It shows the three ways to integrate: the hosted pages (``/auth/sign-in``, ``/auth/sign-up``,
``/auth/user``), the components dropped into a page of the app (``/examples/components``) and
the browser client driving custom pages written like the guide's examples
(``/examples/custom-sign-in``, ``/examples/custom-sign-up``, ``/examples/verification``,
``/examples/add-email``). Emails go to the development mailbox at ``/auth/dev/mailbox``.

Needs the ``demo`` extra (Starlette, uvicorn). Tests build it with :func:`build_app`, passing
their own storage, mailer and clock.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from magiclink_core import Clock, EmailMessage, MagicLinks, Mailer, Settings, Storage
from magiclink_core.mailers import MemoryMailer

from .pages import HostedPages
from .templates import breakable_email

PREFIX = "/auth"
DEMO_LIMITS = {"attempts_per_ip": 1000, "links_per_ip": 1000}
APP_NAME = "magiclink demo"

__all__ = ["DemoApp", "DemoConfig", "PrintingMailer", "build_app", "demo_storage", "load_secret"]


class PrintingMailer(MemoryMailer):
    """Keeps every message (for the development mailbox) and prints a line for each."""

    def __init__(self, mailbox_url: str | None = None, echo: Callable[[str], None] = print):
        super().__init__()
        self._mailbox_url = mailbox_url
        self._echo = echo

    async def send(self, message: EmailMessage) -> None:
        await super().send(message)
        where = f": {self._mailbox_url}/{len(self.outbox)}" if self._mailbox_url else ""
        self._echo(f"  email to {message.to} ({message.subject}){where}")


def load_secret(folder: Path) -> str:
    """The demo's secret, generated once and kept in ``folder/secret`` (mode 0600)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "secret"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            path.chmod(0o600)
        value = path.read_text().strip()
        if len(value) >= 32:
            return value
        path.unlink()
        return load_secret(folder)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
    return path.read_text().strip()


def demo_storage(folder: Path, echo: Callable[[str], None] = print) -> Storage:
    """SQLite in ``folder/demo.sqlite3`` when the adapter is installed; memory otherwise."""
    try:
        from magiclink_core.storage import SQLiteStorage

        return SQLiteStorage(folder / "demo.sqlite3")
    except ImportError as exc:
        from magiclink_core.storage import MemoryStorage

        echo(f"  note: SQLite storage is not available ({exc}); using memory (lost on exit)")
        return MemoryStorage()


@dataclass
class DemoConfig:
    base_url: str = "http://127.0.0.1:8000"
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    storage: Storage | None = None
    mailer: Mailer | None = None
    clock: Clock | None = None
    dev_mailbox: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    pages: dict[str, Any] = field(default_factory=dict)


def build_app(config: DemoConfig | None = None) -> DemoApp:
    """The demo as an ASGI app: Starlette wrapped in ``MagicLinkMiddleware``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response
    from starlette.routing import Route

    from .middleware import MagicLinkMiddleware

    config = config or DemoConfig()
    if config.storage is None:
        from magiclink_core.storage import MemoryStorage

        config.storage = MemoryStorage()
    mailer: Mailer = config.mailer if config.mailer is not None else MemoryMailer()
    settings = Settings(
        secret=config.secret,
        base_url=config.base_url,
        app_name=APP_NAME,
        # every request of a demo comes from 127.0.0.1: per-IP budgets meant for the internet
        # would stop a developer trying things within the hour
        **{**DEMO_LIMITS, **config.settings},
    )
    magiclinks = MagicLinks(settings, storage=config.storage, mailer=mailer, clock=config.clock)
    pages = HostedPages(
        magiclinks,
        dev_mailbox=config.dev_mailbox,
        after_sign_in_url="/",
        after_sign_up_url="/welcome",
        **config.pages,
    )

    def user_of(request: Request) -> Any:
        return request.scope.get("user")

    async def home(request: Request) -> Response:
        return HTMLResponse(_home(user_of(request), config.dev_mailbox))

    async def welcome(request: Request) -> Response:
        user = user_of(request)
        if not getattr(user, "is_authenticated", False):
            return RedirectResponse(f"{PREFIX}/sign-up", status_code=303)
        name = breakable_email(user.display_name)
        body = f"<h1>Welcome, {name}</h1><p>Your account is ready.</p>"
        return HTMLResponse(_layout("Welcome", body, user))

    async def protected(request: Request) -> Response:
        user = user_of(request)
        if not getattr(user, "is_authenticated", False):
            return RedirectResponse(f"{PREFIX}/sign-in?redirect_url=/protected", status_code=303)
        name = breakable_email(user.display_name)
        body = (
            f'<h1>Members only</h1><p data-testid="protected">Hello {name}: only signed-in '
            "people see this page.</p>"
        )
        return HTMLResponse(_layout("Protected", body, user))

    async def favicon(request: Request) -> Response:
        # the pages declare the icon; this answers the browsers and tools that ask anyway
        icon = pages.static["favicon.svg"]
        return Response(
            icon.body,
            media_type=icon.content_type,
            headers={"Cache-Control": "public, max-age=86400"},
        )

    def example(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def page(request: Request) -> Response:
            title, body = _EXAMPLES[name]
            return HTMLResponse(_layout(title, body, user_of(request)))

        return page

    routes = [
        Route("/", home),
        Route("/welcome", welcome),
        Route("/protected", protected),
        Route("/favicon.ico", favicon),
        *[Route(f"/examples/{name}", example(name)) for name in _EXAMPLES],
    ]
    # the middleware runs magiclinks for the app's lifespan (wake-ups, closing at shutdown)
    inner = Starlette(routes=routes)
    app = MagicLinkMiddleware(
        inner, magiclinks=magiclinks, pages=pages, dev_mailbox=config.dev_mailbox
    )
    return DemoApp(app, magiclinks, mailer, pages)


@dataclass
class DemoApp:
    """The demo's ASGI app, with the parts tests reach for."""

    app: Any
    magiclinks: MagicLinks
    mailer: Mailer
    pages: HostedPages

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


# -- pages of the demo app ---------------------------------------------------------------------


def _layout(title: str, body: str, user: Any, head: str = "") -> str:
    signed_in = getattr(user, "is_authenticated", False)
    nav = (
        f'<a href="{PREFIX}/user">Your account</a> · <a href="{PREFIX}/sign-out">Sign out</a>'
        if signed_in
        else f'<a href="{PREFIX}/sign-in">Sign in</a> · <a href="{PREFIX}/sign-up">Sign up</a>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · {APP_NAME}</title>
<link rel="icon" type="image/svg+xml" href="{PREFIX}/static/favicon.svg">
<link rel="stylesheet" href="{PREFIX}/static/magiclink.css">
<style>.demo nav {{ margin: -0.75rem 0 1.25rem; }} .demo form {{ margin-bottom: 1rem; }}
.demo .ml-card {{ overflow-wrap: anywhere; }}</style>
{head}
</head>
<body class="ml-page demo">
<header class="ml-brand"><a class="ml-brand-link" href="/">{APP_NAME}</a></header>
<nav aria-label="Account">{nav}</nav>
<main id="main" class="ml-main"><div class="ml-card ml-wide">{body}</div></main>
</body></html>"""


def _home(user: Any, mailbox: bool) -> str:
    if getattr(user, "is_authenticated", False):
        state = (
            f'<p data-testid="state">Signed in as <strong>{breakable_email(user.display_name)}'
            '</strong>.</p><p><a href="/protected">Open the members-only page</a></p>'
        )
    else:
        state = '<p data-testid="state">You are signed out.</p>'
    mailbox_link = (
        f'<li><a href="{PREFIX}/dev/mailbox">Development mailbox</a>: every email sent</li>'
        if mailbox
        else ""
    )
    body = f"""<h1>{APP_NAME}</h1>
{state}
<h2>Hosted pages</h2>
<ul>
<li><a href="{PREFIX}/sign-in">Sign in</a></li>
<li><a href="{PREFIX}/sign-up">Sign up</a></li>
<li><a href="{PREFIX}/user">Your account</a> (email addresses, sessions)</li>
<li><a href="/protected">A members-only page</a></li>
{mailbox_link}
</ul>
<h2>Your own pages</h2>
<ul>
<li><a href="/examples/components">The components in a page of your app</a></li>
<li><a href="/examples/custom-sign-in">A custom sign-in page</a> and
<a href="/examples/custom-sign-up">sign-up page</a> on the JavaScript client</li>
<li><a href="/examples/add-email">A custom page adding an email address</a></li>
</ul>"""
    return _layout("Home", body, user)


_COMPONENTS = """<h1>Components</h1>
<p>This page of the app holds <code>&lt;magiclink-sign-in&gt;</code>, with no attributes.</p>
<magiclink-sign-in></magiclink-sign-in>
<script type="module" src="/auth/static/magiclink.js"></script>"""


# Written like the guide's custom-flow examples, in plain JavaScript.
def _email_form(flow: str, verb: str) -> str:
    """The custom pages' address form (the same markup on sign-in and sign-up)."""
    return f"""<form id="{flow}">
  <label class="ml-label" for="email">Email address</label>
  <input class="ml-input" id="email" type="text" inputmode="email" autocomplete="email"
    spellcheck="false" autocapitalize="off" required>
  <button class="ml-button ml-primary" type="submit">{verb} with magic link</button>
</form>
"""


def _code_form(verb: str) -> str:
    """The custom pages' box for the code from the email."""
    return f"""<form id="email-code" hidden>
  <label class="ml-label" for="typed">Code from the email</label>
  <input class="ml-input" id="typed" inputmode="numeric" autocomplete="one-time-code"
    aria-describedby="code-error">
  <button class="ml-button" type="submit">{verb} with the code</button>
  <p id="code-error" role="alert"></p>
</form>
"""


_CUSTOM_SIGN_IN = (
    """<h1>Custom sign-in</h1>
"""
    + _email_form("sign-in", "Sign in")
    + """<p id="code" hidden>Code for another device: <strong data-testid="code"></strong></p>
"""
    + _code_form("Sign in")
    + """<p id="status" role="status" aria-live="polite"></p>
<button id="cancel" class="ml-button" type="button" hidden>Cancel</button>
<script type="module">
import { MagicLink } from "/auth/static/magiclink.js";

const ml = await MagicLink.load({ prefix: "/auth" });
const signIn = ml.client.signIn;
const { startMagicLinkFlow, cancelMagicLinkFlow } = signIn.createMagicLinkFlow();
const status = document.getElementById("status");
document.getElementById("cancel").onclick = () => cancelMagicLinkFlow();

// The code from the email, typed here: the wait below then resolves as for a link.
document.getElementById("email-code").addEventListener("submit", async (e) => {
  e.preventDefault();
  const code = document.getElementById("typed").value;
  try {
    await signIn.attemptFirstFactor({ strategy: "email_code", code });
  } catch (err) {
    // email_code_incorrect: err.meta.attemptsLeft; failed: ask for a new email
    document.getElementById("code-error").textContent = err.message;
  }
});

document.getElementById("sign-in").addEventListener("submit", async (e) => {
  e.preventDefault();
  const emailAddress = document.getElementById("email").value;
  // Start the sign in flow, by collecting the user's email address. A refusal (an address
  // that is not one, a spent budget, an outage) is said here: err.message is the server's
  let si;
  try {
    si = await signIn.create({ identifier: emailAddress });
  } catch (err) {
    status.textContent = err.message;
    return;
  }
  const { emailAddressId } = si.supportedFirstFactors.find(
    (ff) => ff.strategy === "email_link",
  );
  status.textContent = "Check your email";
  document.getElementById("cancel").hidden = false;
  // Send the link and wait until it is opened; res is the updated sign-in.
  const res = await startMagicLinkFlow({
    emailAddressId,
    redirectUrl: location.origin + "/examples/verification",
    onPrepared: (s) => {
      document.getElementById("code").hidden = false;
      document.querySelector("[data-testid=code]").textContent =
        s.firstFactorVerification.confirmationCode;
      const codes = s.firstFactorVerification.supportedStrategies.includes("email_code");
      document.getElementById("email-code").hidden = !codes;
    },
  });
  document.getElementById("cancel").hidden = true;
  document.getElementById("email-code").hidden = true;
  const verification = res.firstFactorVerification;
  if (verification.verifiedFromTheSameClient()) {
    status.textContent = "Signed in on other tab";
    return;
  } else if (verification.status === "expired") {
    status.textContent = "Magic link has expired";
  } else if (verification.status === "unverified") {
    status.textContent = "Cancelled";
  }
  if (res.status === "complete") {
    // Sign in is complete, we have a session: make it active, then navigate.
    await ml.setSession(res.createdSessionId, () => location.assign("/protected"));
  }
});
</script>"""
)

_CUSTOM_SIGN_UP = (
    """<h1>Custom sign-up</h1>
"""
    + _email_form("sign-up", "Sign up")
    + """"""
    + _code_form("Sign up")
    + """<p id="status" role="status" aria-live="polite"></p>
<script type="module">
import { MagicLink } from "/auth/static/magiclink.js";

const ml = await MagicLink.load({ prefix: "/auth" });
const signUp = ml.client.signUp;
const { startMagicLinkFlow } = signUp.createMagicLinkFlow();
const status = document.getElementById("status");

document.getElementById("email-code").addEventListener("submit", async (e) => {
  e.preventDefault();
  const code = document.getElementById("typed").value;
  try {
    await signUp.attemptEmailAddressVerification({ code });
  } catch (err) {
    document.getElementById("code-error").textContent = err.message;
  }
});

document.getElementById("sign-up").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await signUp.create({ emailAddress: document.getElementById("email").value });
  } catch (err) {
    status.textContent = err.message;  // the server's word: the address, a budget, an outage
    return;
  }
  status.textContent = "Check your email";
  const su = await startMagicLinkFlow({
    redirectUrl: location.origin + "/examples/verification",
    onPrepared: (s) => {
      const v = s.verifications.emailAddress;
      document.getElementById("email-code").hidden = !v.supportedStrategies.includes("email_code");
    },
  });
  document.getElementById("email-code").hidden = true;
  const verification = su.verifications.emailAddress;
  if (verification.verifiedFromTheSameClient()) {
    status.textContent = "Signed up on other tab";
    return;
  } else if (verification.status === "expired") {
    status.textContent = "Magic link has expired";
  }
  if (su.status === "complete") {
    await ml.setSession(su.createdSessionId, () => location.assign("/protected"));
  }
});
</script>"""
)

_VERIFICATION = """<h1>Verification</h1>
<p id="status" role="status" aria-live="polite">Loading...</p>
<script type="module">
import { MagicLink, MagicLinkErrorCode, isMagicLinkError } from "/auth/static/magiclink.js";

const ml = await MagicLink.load({ prefix: "/auth" });
const status = document.getElementById("status");
try {
  await ml.handleMagicLinkVerification({
    redirectUrl: "/examples/custom-sign-in",
    redirectUrlComplete: "/protected",
  });
  // If we're not redirected at this point, the flow completed on another device.
  status.textContent = "Successfully signed in. Return to the original tab to continue.";
} catch (err) {
  let verificationStatus = "Magic link verification failed";
  if (isMagicLinkError(err) && err.code === MagicLinkErrorCode.Expired) {
    verificationStatus = "Magic link expired";
  }
  status.textContent = verificationStatus;
}
</script>"""

_ADD_EMAIL = """<h1>Add an email address</h1>
<form id="new-email">
  <label class="ml-label" for="email">New email address</label>
  <input class="ml-input" id="email" type="text" inputmode="email" autocomplete="email"
    spellcheck="false" autocapitalize="off" required>
  <button class="ml-button ml-primary" type="submit">Add</button>
</form>
<form id="email-code" hidden>
  <label class="ml-label" for="typed">Code from the email</label>
  <input class="ml-input" id="typed" inputmode="numeric" autocomplete="one-time-code"
    aria-describedby="code-error">
  <button class="ml-button" type="submit">Verify with the code</button>
  <p id="code-error" role="alert"></p>
</form>
<p id="status" role="status" aria-live="polite"></p>
<script type="module">
import { MagicLink, useMagicLink } from "/auth/static/magiclink.js";

const ml = await MagicLink.load({ prefix: "/auth" });
const status = document.getElementById("status");
if (!ml.user) status.textContent = "Sign in first.";
let adding = null;

document.getElementById("email-code").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    await adding.attemptVerification({ code: document.getElementById("typed").value });
  } catch (err) {
    document.getElementById("code-error").textContent = err.message;
  }
});

document.getElementById("new-email").addEventListener("submit", async (e) => {
  e.preventDefault();
  let emailAddress;
  try {
    emailAddress = await ml.user.createEmailAddress({
      email: document.getElementById("email").value,
    });
  } catch (err) {
    status.textContent = err.message;  // the server's word: the address, a budget, an outage
    return;
  }
  status.textContent = "Waiting for verification...";
  adding = emailAddress;
  const { startMagicLinkFlow } = useMagicLink(emailAddress);
  const res = await startMagicLinkFlow({
    redirectUrl: location.origin + "/auth/verify?flow=email_address",
    onPrepared: (a) => {
      document.getElementById("email-code").hidden =
        !a.verification.supportedStrategies.includes("email_code");
    },
  });
  document.getElementById("email-code").hidden = true;
  // res holds the updated EmailAddress object.
  if (res.verification.status === "verified") {
    status.textContent = `Verified ${res.emailAddress}`;
  } else {
    status.textContent = `Not verified: ${res.verification.status}`;
  }
});
</script>"""

_EXAMPLES = {
    "components": ("Components", _COMPONENTS),
    "custom-sign-in": ("Custom sign-in", _CUSTOM_SIGN_IN),
    "custom-sign-up": ("Custom sign-up", _CUSTOM_SIGN_UP),
    "verification": ("Verification", _VERIFICATION),
    "add-email": ("Add an email address", _ADD_EMAIL),
}
