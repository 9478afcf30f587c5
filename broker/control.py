"""Operator requests that arrive on the broker's control socket (from ``seawall``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared import protocol
from shared.config import ConfigError

if TYPE_CHECKING:
    from broker.server import Broker

Answer = tuple[bool, dict[str, Any]]

#: ``seawall breaker open|close|auto KEY`` sets ``breaker_force`` to these.
FORCE_FOR_ACTION = {"open": "open", "close": "closed", "auto": "auto"}


def _status(broker: Broker, arguments: dict[str, Any]) -> Answer:
    return True, broker.status()


def _ping(broker: Broker, arguments: dict[str, Any]) -> Answer:
    return True, {"pong": True}


def _config_set(broker: Broker, arguments: dict[str, Any]) -> Answer:
    key, value = arguments.get("key"), arguments.get("value")
    if not isinstance(key, str) or "value" not in arguments:
        return False, {"error": "config_set needs a 'key' (e.g. commands.GetRatings.timeout_s) and a 'value'"}
    try:
        return True, {"key": key, "value": broker.set_setting(key, value)}
    except ConfigError as exc:
        return False, {"error": str(exc)}


def _breaker(broker: Broker, arguments: dict[str, Any]) -> Answer:
    command, force = arguments.get("command"), FORCE_FOR_ACTION.get(arguments.get("force"))
    if not isinstance(command, str) or not command or "." in command or force is None:
        return False, {"error": "breaker needs a 'command' key and 'force' (open, close or auto)"}
    return _config_set(broker, {"key": f"commands.{command}.breaker_force", "value": force})


ACTIONS = {"status": _status, "ping": _ping, "config_set": _config_set, "breaker": _breaker}


def handle_control(broker: Broker, message: protocol.Control) -> Answer:
    action = ACTIONS.get(message.action)
    if action is None:
        return False, {"error": f"unknown action {message.action!r} (known: {', '.join(sorted(ACTIONS))})"}
    return action(broker, message.arguments)
