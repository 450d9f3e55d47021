"""The one jinja2 environment of the package: hosted pages, the landing, the mailbox."""

from __future__ import annotations

from functools import cache

import jinja2
from markupsafe import Markup, escape


def template_loader() -> jinja2.BaseLoader:
    """The loader for magiclink's templates, to add to an app's own jinja2 environment
    (``jinja2.ChoiceLoader([your_loader, template_loader()])``) so that
    ``{% from "magiclink/macros.html" import sign_in %}`` works."""
    return jinja2.PackageLoader("magiclink_asgi", "templates")


def breakable_email(address: object) -> Markup:
    """An address as HTML: escaped, free to wrap after its last "@" first, so a long address
    breaks there on a narrow screen rather than inside its domain (``.ml-email`` still breaks a
    part too wide for the line anywhere). The pages' filter of the same name."""
    local, at, domain = str(address).rpartition("@")
    if not at:
        return escape(domain)
    return escape(local) + Markup("@<wbr>") + escape(domain)


@cache
def environment() -> jinja2.Environment:
    """The environment every page of the package renders with (built once, autoescaping)."""
    env = jinja2.Environment(
        loader=template_loader(),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # package files do not change under a running app
    )
    env.filters["breakable_email"] = breakable_email
    return env


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(context)
