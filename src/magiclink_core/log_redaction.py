"""A logging filter that keeps tokens out of logs the library does not write itself.

A link's URL carries its token (``/auth/v1/verify?token=mll1_…``), so a server's access log
(uvicorn's ``uvicorn.access``, gunicorn's, a proxy's) records it. magiclink's own log never holds
a token; attach :class:`TokenRedactingFilter` to the handlers or loggers that log request lines::

    logging.getLogger("uvicorn.access").addFilter(TokenRedactingFilter())
"""

from __future__ import annotations

import logging

from .domain.tokens import TOKEN_IN_TEXT, redact_tokens


class TokenRedactingFilter(logging.Filter):
    """Replaces the secret body of every magiclink token in a record's message and arguments.

    The record is kept (the filter never drops a line); its ``msg`` and string ``args`` are
    rewritten in place before any handler formats it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and TOKEN_IN_TEXT.search(record.msg):
            record.msg = redact_tokens(record.msg)
        args = record.args
        if isinstance(args, tuple):
            if any(isinstance(a, str) and TOKEN_IN_TEXT.search(a) for a in args):
                record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in args)
        elif isinstance(args, dict):
            record.args = {
                k: redact_tokens(v) if isinstance(v, str) else v for k, v in args.items()
            }
        return True
