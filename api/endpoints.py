"""Endpoint modules: one Python file per device or client team, loaded from a directory.

A module ``ps3.py`` serves the paths under ``/ps3/``: its ``ROUTES`` maps the rest of the
path to a handler, ``ROUTES = {"home": home}`` serving ``/ps3/home``. A handler takes the
:class:`EndpointRequest` and returns a JSON-able value, an ``Observable`` of one, or
``(status, value)``. Files are checked for changes at most once a second and reloaded
without a restart; a module that fails to load makes only its own paths answer 500,
with the error.
"""

from __future__ import annotations

import importlib.util
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

from shared.logging import get_logger

log = get_logger("api.endpoints")

#: How often the directory is checked for new, changed or removed modules.
RESCAN_INTERVAL_S = 1.0
#: Most endpoint modules served (files past that are ignored, with a warning).
MAX_MODULES = 1000

Handler = Callable[["EndpointRequest"], Any]


@dataclass(frozen=True)
class EndpointRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class LoadedModule:
    """One module's routes, or the error that stops it loading."""

    name: str
    mtime_ns: int
    routes: dict[str, Handler] = field(default_factory=dict)
    error: str | None = None


class EndpointDirectory:
    def __init__(self, directory: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self._clock = clock
        self._modules: dict[str, LoadedModule] = {}
        self._scanned_s = float("-inf")

    def resolve(self, path: str) -> tuple[LoadedModule | None, Handler | None]:
        """(the module that owns ``path``, its handler); a module with an error has no handler."""
        self._rescan_if_due()
        module_name, _, route = path.strip("/").partition("/")
        module = self._modules.get(module_name)
        if module is None or module.error is not None:
            return module, None
        return module, module.routes.get(route)

    def routes(self) -> list[str]:
        self._rescan_if_due()
        return sorted(f"/{m.name}/{route}" for m in self._modules.values() for route in m.routes)

    def _rescan_if_due(self) -> None:
        now_s = self._clock()
        if now_s - self._scanned_s < RESCAN_INTERVAL_S:
            return
        self._scanned_s = now_s
        files = sorted(self.directory.glob("*.py"))[:MAX_MODULES] if self.directory.is_dir() else []
        present = set()
        for file in files:
            name = file.stem
            if name.startswith("_"):
                continue
            present.add(name)
            mtime_ns = file.stat().st_mtime_ns
            known = self._modules.get(name)
            if known is None or known.mtime_ns != mtime_ns:
                self._modules[name] = _load(name, file, mtime_ns)
        for gone in set(self._modules) - present:
            del self._modules[gone]
            log.info("endpoint_module_removed", module=gone)


def _load(name: str, file: Path, mtime_ns: int) -> LoadedModule:
    """Import ``file`` afresh as module ``endpoints.NAME``; any failure is kept, not raised."""
    try:
        spec = importlib.util.spec_from_file_location(f"endpoints.{name}", file)
        if spec is None or spec.loader is None:
            raise ImportError(f"no loader for {file.name}")
        module: ModuleType = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        routes = getattr(module, "ROUTES", None)
        if not isinstance(routes, dict) or not all(isinstance(k, str) and callable(v) for k, v in routes.items()):
            raise TypeError(f"{file.name} must define ROUTES, a dict of path -> handler function")
    except Exception as exc:  # noqa: BLE001 - a broken module must not take the front down
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        log.error("endpoint_module_broken", module=name, file=str(file), error=error)
        return LoadedModule(name, mtime_ns, error=f"endpoint module {file.name} does not load: {error}")
    log.info("endpoint_module_loaded", module=name, routes=sorted(routes))
    return LoadedModule(name, mtime_ns, {route.strip("/"): handler for route, handler in routes.items()})
