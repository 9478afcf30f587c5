"""The commands a worker may run: those of its dependency in the modules it was given.

A worker runs only what is registered here (msgpack carries names and arguments, never
code), so a request for anything else is an error reply, not an import or a crash.
"""

from __future__ import annotations

import importlib
import inspect

from api.command import Command


class RegistryError(Exception):
    """The command modules cannot serve this dependency; the text says why."""


def load_commands(module_names: list[str], dependency: str) -> dict[str, type[Command]]:
    """Import ``module_names``; return their ``Command`` classes for ``dependency`` by key."""
    commands: dict[str, type[Command]] = {}
    others: list[str] = []
    for module_name in module_names:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise RegistryError(f"cannot import command module {module_name!r}: {type(exc).__name__}: {exc}") from exc
        for value in vars(module).values():
            if not (inspect.isclass(value) and issubclass(value, Command) and value.__module__ == module.__name__):
                continue
            if value.dependency != dependency:
                others.append(f"{value.key} ({value.dependency})")
                continue
            if value.key in commands and commands[value.key] is not value:
                raise RegistryError(f"two commands have the key {value.key!r}: "
                                    f"{commands[value.key].__qualname__} and {value.__qualname__}")
            commands[value.key] = value
    if not commands:
        raise RegistryError(
            f"modules {', '.join(module_names)} define no command with dependency = {dependency!r}"
            + (f" (they define: {', '.join(others)})" if others else "")
        )
    return commands
