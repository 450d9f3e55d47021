"""magiclink_asgi: magic-link authentication for any ASGI app (Starlette, FastAPI, Quart, ...).

from magiclink_asgi import MagicLinkMiddleware
app = MagicLinkMiddleware(app, magiclinks=MagicLinks(...), prefix="/auth")
"""

from typing import TYPE_CHECKING, Any

from .identity import AuthCredentials as AuthCredentials
from .identity import MagicLinkState as MagicLinkState
from .identity import MagicLinkUser as MagicLinkUser
from .identity import NotSignedIn as NotSignedIn
from .identity import auth_available as auth_available
from .identity import current_user as current_user
from .identity import require_user as require_user
from .middleware import MagicLinkMiddleware as MagicLinkMiddleware
from .peers import TrustedProxies as TrustedProxies
from .peers import describe_device as describe_device

if TYPE_CHECKING:
    from .pages import HostedPages as HostedPages

__all__ = [
    "AuthCredentials",
    "HostedPages",
    "MagicLinkMiddleware",
    "MagicLinkState",
    "MagicLinkUser",
    "NotSignedIn",
    "TrustedProxies",
    "auth_available",
    "current_user",
    "describe_device",
    "require_user",
]


def __getattr__(name: str) -> Any:
    if name == "HostedPages":  # jinja2 templates load only when the pages are wanted
        from .pages import HostedPages

        return HostedPages
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
