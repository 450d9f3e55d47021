"""What the PostgreSQL and Redis adapters share about their connections to a server: how long
connecting and each command may take, and how many connections they hold at most."""

from __future__ import annotations


class ConnectionLimits:
    """The base of a storage that talks to a server: its time limits and pool size, as the
    public attributes ``connect_timeout``, ``command_timeout`` and ``max_connections``."""

    def __init__(
        self, connect_timeout: float, command_timeout: float, max_connections: int
    ) -> None:
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.max_connections = max_connections
