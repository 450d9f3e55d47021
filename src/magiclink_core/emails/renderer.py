"""Renders the emails magiclink sends, from jinja2 templates the user may override.

Each email is two templates, ``<name>.txt`` and ``<name>.html``, plus a subject given by the
``subject`` block of the text template; the name comes from what the link verifies
(:data:`TEMPLATES`), or, for a notice of an account change, from the change
(:data:`NOTICE_TEMPLATES`). Put files of the same names in your own folder and pass it as
``template_dir`` to replace any of them. Templates are compiled once, on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from jinja2.runtime import Context

from ..domain.emails import envelope_address
from ..domain.models import AttemptKind
from ..domain.quick_init import quick_init
from ..ports import EmailMessage

TEMPLATES: dict[AttemptKind, str] = {
    AttemptKind.SIGN_UP: "sign_up",
    AttemptKind.SIGN_IN: "sign_in",
    AttemptKind.EMAIL_ADDRESS: "verify_email",
}
NO_ACCOUNT_TEMPLATE = "sign_in_no_account"
"""A sign-in of an address with no account: says so instead of carrying a link."""


@quick_init
@dataclass(frozen=True, slots=True)
class LinkEmail:
    """What an email template gets to say."""

    kind: AttemptKind
    to: str
    app_name: str
    base_url: str
    link_url: str | None
    valid_for: timedelta
    device: str
    ip_address: str
    requested_at: datetime
    has_account: bool = True
    code: str | None = None  # the email code, typed on the device that asked
    sign_up_url: str = ""  # where the "no account" email sends the person to sign up

    @property
    def template(self) -> str:
        """The name of the templates (``.txt`` and ``.html``) of this email."""
        if self.kind is AttemptKind.SIGN_IN and not self.has_account:
            return NO_ACCOUNT_TEMPLATE
        return TEMPLATES[self.kind]


NOTICE_TEMPLATES = frozenset(
    {"email_address_added", "email_address_removed", "primary_email_address_changed"}
)
"""The emails that tell a user's other verified addresses of an account change, named after the
change's event."""


@quick_init
@dataclass(frozen=True, slots=True)
class NoticeEmail:
    """What an account-change notice gets to say: ``kind`` (one of :data:`NOTICE_TEMPLATES`)
    happened to ``email_address``, asked for from ``device`` at ``requested_at``."""

    kind: str
    to: str
    app_name: str
    base_url: str
    email_address: str
    device: str
    ip_address: str
    requested_at: datetime

    def __post_init__(self) -> None:
        if self.kind not in NOTICE_TEMPLATES:
            raise ValueError(f"no notice template for {self.kind!r}")

    @property
    def template(self) -> str:
        return self.kind


class EmailRenderer:
    """Renders an email's subject, plain text and HTML from its templates (see the module).

    :param template_dir: a folder of your own templates; a name it lacks comes from the library.
    """

    def __init__(self, template_dir: str | Path | None = None) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if template_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(template_dir)))
        loaders.append(jinja2.PackageLoader("magiclink_core.emails", "templates"))
        options = {
            "loader": jinja2.ChoiceLoader(loaders),
            "undefined": jinja2.StrictUndefined,
            "auto_reload": False,  # compiled once: no stat of the template files per email
        }
        self._text_env = jinja2.Environment(
            autoescape=False,  # noqa: S701 - the plain-text part is not HTML
            keep_trailing_newline=True,
            **options,  # type: ignore[arg-type]
        )
        self._html_env = jinja2.Environment(autoescape=True, **options)  # type: ignore[arg-type]
        self._text_env.filters["duration"] = _duration
        self._html_env.filters["duration"] = _duration
        self._text = _Templates(self._text_env)
        self._html = _Templates(self._html_env)

    def render(self, email: LinkEmail | NoticeEmail) -> EmailMessage:
        """The email as sent: the subject is the text template's ``subject`` block (its own or
        one it inherits), on one line.

        :raises jinja2.TemplateError: a template failed (an undefined name is an error).
        :raises ValueError: the subject is blank (no ``subject`` block, or an empty one).
        """
        values: dict[str, Any] = {"email": email, "app_name": email.app_name}
        name = f"{email.template}.txt"
        text, context = self._text.render(name, values)
        subject = " ".join(_block(context, "subject").split())  # no newline reaches a header
        if not subject:
            raise ValueError(
                f"the email template {name} gives no subject: give it a non-empty "
                "{% block subject %} (or extend a template that has one)"
            )
        html, _ = self._html.render(f"{email.template}.html", values)
        return EmailMessage(
            to=envelope_address(email.to),  # shown as typed, sent to its ASCII form
            subject=subject,
            text=text,
            html=html,
            kind=email.template,
            email_code=email.code if isinstance(email, LinkEmail) else None,
        )


class _Templates:
    """One environment's templates, each rendered as ``Template.render`` renders it, keeping the
    context for the subject block. Each template is looked up once, and its globals (jinja2's
    ``range``, ``namespace``...) merged once: jinja2 would merge them from a ChainMap on every
    render, whose Python-level iteration and lookups were about a fifth of an email's render
    (cProfile)."""

    def __init__(self, env: jinja2.Environment) -> None:
        self.env = env
        self._loaded: dict[str, tuple[jinja2.Template, dict[str, Any]]] = {}

    def render(self, name: str, values: dict[str, Any]) -> tuple[str, Context]:
        loaded = self._loaded.get(name)
        if loaded is None:
            template = self.env.get_template(name)
            loaded = self._loaded[name] = (template, dict(template.globals))
        template, merged = loaded
        context = template.new_context({**merged, **values}, shared=True)
        try:
            return "".join(template.root_render_func(context)), context
        except Exception:
            self.env.handle_exception()


def _block(context: Context, name: str) -> str:
    """The named block as the rendered template's inheritance left it (the most derived one),
    rendered in the same context, as ``{{ self.<name>() }}`` would; "" if there is none."""
    blocks = context.blocks.get(name)
    if not blocks:
        return ""
    try:
        return "".join(blocks[0](context))
    except Exception:
        context.environment.handle_exception()


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes < 1:
        return f"{int(value.total_seconds())} seconds"
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = minutes // 60
    return f"{hours} hours"
