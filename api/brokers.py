"""The brokers a caller may use: its own host's, and others listed in ``[brokers.NAME]``.

With one broker every call goes to it. With several, each call goes to a reachable
broker whose breaker lets the command through and whose pool for it has the most room
(free slots and queue places as its last metrics snapshot said, less the calls this
caller has sent there since, net of answers); ties go to the first listed, the host's own. A broker that goes silent is
skipped for new calls until it is heard again, so calls fail over within the silence a
connection needs to call it down (``BROKER_SILENT_S``).
"""

from __future__ import annotations

from typing import Any, Callable

from api.connection import BrokerConnection
from shared.config import Config


class BrokerSet:
    def __init__(self, config: Config, on_overrides: Callable[[dict[str, Any]], None]) -> None:
        links = [(config.endpoints, None)] + [
            ({"front": link["front"], "events": link["events"]}, link.get("key"))
            for link in config.brokers.values()
        ]
        several = len(links) > 1
        self.connections = [
            BrokerConnection(endpoints, on_overrides if index == 0 else _ignore, config=config,
                             server_key=server_key, track_capacity=several, name=f"broker {index}")
            for index, (endpoints, server_key) in enumerate(links)
        ]
        self._several = several

    def open(self) -> None:
        """Connect every broker, if this process has not yet: a cheap no-op after that."""
        for connection in self.connections:
            connection.open()

    def close(self) -> None:
        for connection in self.connections:
            connection.close()

    @property
    def primary(self) -> BrokerConnection:
        """The first broker that is heard: semaphore commands' breakers and reports."""
        for connection in self.connections:
            if not connection.broker_down:
                return connection
        return self.connections[0]

    @property
    def all_down(self) -> bool:
        return all(connection.broker_down for connection in self.connections)

    @property
    def pending_calls(self) -> int:
        return sum(connection.pending_calls for connection in self.connections)

    def choose(self, command_key: str, pool: str) -> tuple[BrokerConnection | None, str]:
        """The broker for one call, or None and why none will do."""
        if not self._several:
            connection = self.connections[0]
            connection.open()
            if connection.broker_down:
                return None, "the broker is unreachable"
            if connection.breakers.short_circuits(command_key):
                return None, "the breaker is OPEN"
            return connection, ""
        self.open()
        best, best_room = None, None
        reachable = False
        for connection in self.connections:
            if connection.broker_down:
                continue
            reachable = True
            if connection.breakers.short_circuits(command_key):
                continue
            room = connection.room(pool)
            if best_room is None or room > best_room:
                best, best_room = connection, room
        if best is not None:
            return best, ""
        return None, "the breaker is OPEN on every broker" if reachable else "every broker is unreachable"


def _ignore(overrides: dict[str, Any]) -> None:
    """Runtime settings come from the first broker only: one source of truth."""
