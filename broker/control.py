"""Operator requests that arrive on the broker's control socket (from ``seawall``)."""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any, Iterable

from broker import bounded
from broker.chaos import kill_worker, set_chaos
from shared import protocol
from shared.config import ConfigError
from shared.logging import get_logger

if TYPE_CHECKING:
    from broker.server import Broker

log = get_logger("broker.control")

Answer = tuple[bool, dict[str, Any]]

#: Names listed in an error about an unknown pool or command, at most.
KNOWN_NAMES_SHOWN = 20
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
        _check_name(broker, key, new_command_ok=arguments.get("new_command_ok") is True)
        return True, {"key": key, "value": broker.set_setting(key, value)}
    except ConfigError as exc:
        return False, {"error": str(exc)}


def _config_unset(broker: Broker, arguments: dict[str, Any]) -> Answer:
    key = arguments.get("key")
    if not isinstance(key, str):
        return False, {"error": "config_unset needs a 'key' (e.g. commands.GetRatings.timeout_s)"}
    try:
        broker.unset_setting(key)
    except ConfigError as exc:
        return False, {"error": str(exc)}
    return True, {"key": key, "unset": True}


def _breaker(broker: Broker, arguments: dict[str, Any]) -> Answer:
    command, force = arguments.get("command"), arguments.get("force")
    force = FORCE_FOR_ACTION.get(force) if isinstance(force, str) else None
    if not isinstance(command, str) or not command or force is None:
        return False, {"error": "breaker needs a 'command' key and 'force' (open, close or auto)"}
    return _config_set(broker, {"key": f"commands.{command}.breaker_force", "value": force,
                                "new_command_ok": arguments.get("new_command_ok")})


def _check_name(broker: Broker, dotted_key: str, new_command_ok: bool) -> None:
    """The pool or command a runtime setting names must be one the broker knows: a typo
    would set what nothing reads, and say it worked. A command not called yet can be
    named on purpose (``new_command_ok``, the CLI's ``--new``)."""
    section, *named, _ = dotted_key.split(".") if "." in dotted_key else ("", "")  # no dot: refused by set_setting
    name = ".".join(named)
    if not name:
        return
    if section == "pools":
        pools = {*broker.pools, *broker.file_config.pools}
        if name not in pools:
            raise ConfigError(dotted_key, f"no pool {name!r} ({_known('pools', pools, name)})")
    elif section == "commands" and not new_command_ok:
        known = broker.commands.known_keys()
        if name not in known:
            raise ConfigError(dotted_key, f"no command {name!r} is known to the broker "
                                          f"({_known('commands', known, name)}); to set it before its first call, "
                                          "add --new")


def _known(what: str, names: Iterable[str], wanted: str) -> str:
    """The names most like ``wanted``, or a few of them: a reply stays small however many."""
    names = sorted(set(names))
    if not names:
        return f"it knows no {what} yet"
    close = difflib.get_close_matches(wanted, names, n=3)
    if close:
        return f"did you mean {', '.join(close)}?"
    shown = names[:KNOWN_NAMES_SHOWN]
    more = f", ... {len(names) - len(shown)} more" if len(names) > len(shown) else ""
    return f"{what}: {', '.join(shown)}{more}"


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
                allowed = "from 0 to 100" if name.endswith("_pct") else ">= 0"
                return False, {"error": f"chaos {mode}: {name} must be a number {allowed}, got {value!r:.50}"}
        set_chaos(broker, dependency, settings)
        return True, {"dependency": dependency, "chaos": broker.pools[dependency].chaos}
    except KeyError as exc:
        return False, {"error": exc.args[0]}


ACTIONS = {"status": _status, "ping": _ping, "config_set": _config_set, "config_unset": _config_unset,
           "breaker": _breaker, "chaos": _chaos}


def handle_control(broker: Broker, message: protocol.Control) -> Answer:
    action = ACTIONS.get(message.action)
    if action is None:
        return False, {"error": f"unknown action {message.action!r} (known: {', '.join(sorted(ACTIONS))})"}
    try:
        return action(broker, message.arguments)
    except Exception as exc:  # noqa: BLE001 - an operator's request must not end the broker's loop
        log.error("control_action_failed", action=message.action, error=f"{type(exc).__name__}: {exc}")
        return False, {"error": f"{message.action} failed in the broker: {type(exc).__name__}: {exc}"}
