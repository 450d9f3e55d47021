"""The one jinja2 environment of the package: hosted pages, the landing, the mailbox."""

from __future__ import annotations

from functools import cache

import jinja2


def template_loader() -> jinja2.BaseLoader:
    """The loader for magiclink's templates, to add to an app's own jinja2 environment
    (``jinja2.ChoiceLoader([your_loader, template_loader()])``) so that
    ``{% from "magiclink/macros.html" import sign_in %}`` works."""
    return jinja2.PackageLoader("magiclink_asgi", "templates")


@cache
def environment() -> jinja2.Environment:
    """The environment every page of the package renders with (built once, autoescaping)."""
    return jinja2.Environment(
        loader=template_loader(),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # package files do not change under a running app
    )


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(context)
