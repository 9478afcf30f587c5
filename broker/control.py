"""Operator requests that arrive on the broker's control socket (from ``seawall``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared import protocol

if TYPE_CHECKING:
    from broker.server import Broker

Answer = tuple[bool, dict[str, Any]]


def _status(broker: Broker, arguments: dict[str, Any]) -> Answer:
    return True, broker.status()


def _ping(broker: Broker, arguments: dict[str, Any]) -> Answer:
    return True, {"pong": True}


ACTIONS = {"status": _status, "ping": _ping}


def handle_control(broker: Broker, message: protocol.Control) -> Answer:
    action = ACTIONS.get(message.action)
    if action is None:
        return False, {"error": f"unknown action {message.action!r} (known: {', '.join(sorted(ACTIONS))})"}
    return action(broker, message.arguments)
