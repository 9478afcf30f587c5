"""Operator requests that arrive on the broker's control socket (from ``seawall``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from broker import bounded
from broker.chaos import kill_worker, set_chaos
from shared import protocol
from shared.config import ConfigError

if TYPE_CHECKING:
    from broker.server import Broker

Answer = tuple[bool, dict[str, Any]]

#: ``seawall breaker open|close|auto KEY`` sets ``breaker_force`` to these.
FORCE_FOR_ACTION = {"open": "open", "close": "closed", "auto": "auto"}


def _status(broker: Broker, arguments: dict[str, Any]) -> Answer:
    command_text = arguments.get("command", "")
    if type(command_text) is not str or len(command_text) > protocol.MAX_NAME_CHARS:
        return False, {"error": f"status: 'command' must be text of at most {protocol.MAX_NAME_CHARS} characters"}
    return True, bounded.status(broker, command_text)


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
    command, force = arguments.get("command"), arguments.get("force")
    force = FORCE_FOR_ACTION.get(force) if isinstance(force, str) else None
    if not isinstance(command, str) or not command or "." in command or force is None:
        return False, {"error": "breaker needs a 'command' key and 'force' (open, close or auto)"}
    return _config_set(broker, {"key": f"commands.{command}.breaker_force", "value": force})


#: ``seawall chaos MODE``: the chaos settings each mode sets.
CHAOS_SETTINGS_FOR_MODE = {
    "latency": lambda arguments: {"latency_ms": arguments.get("latency_ms"), "latency_pct": arguments.get("pct", 100)},
    "errors": lambda arguments: {"error_pct": arguments.get("pct")},
    "hang": lambda arguments: {"hang_pct": arguments.get("pct", 100)},
}


def _chaos(broker: Broker, arguments: dict[str, Any]) -> Answer:
    mode, dependency = arguments.get("mode"), arguments.get("dependency")
    if not isinstance(mode, str) or not (dependency is None or isinstance(dependency, str)):
        return False, {"error": "chaos needs a 'mode' and a 'dependency' (a pool name)"}
    try:
        if mode == "clear":
            for name in [dependency] if dependency else list(broker.pools):
                set_chaos(broker, name, {})
            return True, {"cleared": dependency or "every pool"}
        if not isinstance(dependency, str):
            return False, {"error": f"chaos {mode} needs a dependency"}
        if mode == "kill":
            return True, {"killed_pid": kill_worker(broker, dependency)}
        settings_for = CHAOS_SETTINGS_FOR_MODE.get(mode)
        if settings_for is None:
            return False, {"error": f"unknown chaos mode {mode!r} (latency, errors, hang, kill, clear)"}
        settings = settings_for(arguments)
        for name, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0 or (name.endswith("_pct") and value > 100):
                return False, {"error": f"chaos {mode}: {name} must be a number in range, got {value!r:.50}"}
        set_chaos(broker, dependency, settings)
        return True, {"dependency": dependency, "chaos": broker.pools[dependency].chaos}
    except KeyError as exc:
        return False, {"error": exc.args[0]}


ACTIONS = {"status": _status, "ping": _ping, "config_set": _config_set, "breaker": _breaker, "chaos": _chaos}


def handle_control(broker: Broker, message: protocol.Control) -> Answer:
    action = ACTIONS.get(message.action)
    if action is None:
        return False, {"error": f"unknown action {message.action!r} (known: {', '.join(sorted(ACTIONS))})"}
    return action(broker, message.arguments)
