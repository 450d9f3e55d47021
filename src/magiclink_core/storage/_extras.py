"""Shared bits of the optional adapters: the message of a missing extra."""

from __future__ import annotations


def missing_extra(what: str, module: str, extra: str) -> ImportError:
    """The ImportError raised when an adapter's driver is not installed."""
    return ImportError(
        f"{what} needs the {module!r} package, which is not installed; "
        f"install it with: pip install 'magiclink[{extra}]'"
    )
