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

import jinja2

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

    def render(self, email: LinkEmail | NoticeEmail) -> EmailMessage:
        context = {"email": email, "app_name": email.app_name}
        text_template = self._text_env.get_template(f"{email.template}.txt")
        subject_block = text_template.blocks.get("subject")
        text = text_template.render(context)
        subject = ""
        if subject_block is not None:
            subject = "".join(subject_block(text_template.new_context(context))).strip()
        subject = " ".join(subject.split())  # no newline ever reaches a header
        html = self._html_env.get_template(f"{email.template}.html").render(context)
        return EmailMessage(
            to=envelope_address(email.to),  # shown as typed, sent to its ASCII form
            subject=subject,
            text=text,
            html=html,
            kind=email.template,
            email_code=email.code if isinstance(email, LinkEmail) else None,
        )


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds() // 60)
    if minutes < 1:
        return f"{int(value.total_seconds())} seconds"
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = minutes // 60
    return f"{hours} hours"
