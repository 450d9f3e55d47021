"""The ``magiclink`` command.

``magiclink demo``                 run the demo app on http://127.0.0.1:8000 (``magiclink[demo]``)
``magiclink migrate --database U`` create or upgrade the schema of the storage at URL ``U``
``magiclink secret``               print a new secret for ``Settings(secret=...)``
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from .devmail import is_loopback_host

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="magiclink", description="Passwordless email-link authentication."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser("demo", help="run the demo app with a development mailbox")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")
    demo.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".magiclink"),
        help="where the demo keeps its secret and SQLite database (./.magiclink)",
    )
    demo.add_argument(
        "--memory", action="store_true", help="keep everything in memory (lost on exit)"
    )
    demo.add_argument(
        "--no-mailbox",
        action="store_true",
        help="no development mailbox: emails are printed to the terminal instead",
    )

    migrate = commands.add_parser("migrate", help="create or upgrade a storage's schema")
    migrate.add_argument(
        "--database",
        required=True,
        metavar="URL",
        help="sqlite:///path.db, postgresql://user@host/db, redis://host:6379/0",
    )

    commands.add_parser("secret", help="print a new random secret")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command == "migrate":
        return _migrate(args.database)
    print(secrets.token_urlsafe(48))
    return 0


def _demo(args: argparse.Namespace) -> int:
    mailbox = not args.no_mailbox
    if mailbox and not is_loopback_host(args.host):
        print(
            f"magiclink demo: refusing to listen on {args.host} with the development mailbox on: "
            "it shows sign-in links to whoever can reach it. Use --host 127.0.0.1, or "
            "--no-mailbox.",
            file=sys.stderr,
        )
        return 2
    try:
        import uvicorn

        from .demo import DemoConfig, PrintingMailer, build_app, demo_storage, load_secret
    except ImportError as exc:
        print(
            f"magiclink demo needs the demo extra ({exc.name or exc}): "
            "pip install 'magiclink[demo]'",
            file=sys.stderr,
        )
        return 1
    from magiclink_core import Mailer
    from magiclink_core.mailers import ConsoleMailer

    host = "127.0.0.1" if args.host in {"0.0.0.0", "::"} else args.host  # noqa: S104
    shown_host = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown_host}:{args.port}"
    mailbox_url = f"{base_url}/auth/dev/mailbox"
    print(f"magiclink demo: {base_url}")
    if mailbox:
        print(f"  development mailbox: {mailbox_url}")
    storage = None
    if not args.memory:
        storage = demo_storage(args.data_dir)
        print(f"  data: {args.data_dir}/ (secret, demo.sqlite3)")
    mailer: Mailer = PrintingMailer(mailbox_url) if mailbox else ConsoleMailer()
    try:
        app = build_app(
            DemoConfig(
                base_url=base_url,
                secret=load_secret(args.data_dir),
                storage=storage,
                mailer=mailer,
                dev_mailbox=mailbox,
            )
        )
    except RuntimeError as exc:
        print(f"magiclink demo: {exc}", file=sys.stderr)
        return 1
    print("  press Ctrl+C to stop")
    # the client IP is the socket's peer, as the middleware reads it without trusted_proxies:
    # uvicorn would otherwise believe X-Forwarded-For/Proto from any local client
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", proxy_headers=False)
    return 0


def _migrate(url: str) -> int:
    from magiclink_core.storage import migrate_url

    try:
        version = asyncio.run(migrate_url(url))
    except ImportError as exc:
        print(f"magiclink migrate: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"magiclink migrate: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"magiclink migrate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    where = _redact(url)
    if version:
        print(f"{where}: schema at version {version}")
    else:
        print(f"{where}: nothing to migrate (this backend has no schema)")
    return 0


def _redact(url: str) -> str:
    """The URL without its password, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return url


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
