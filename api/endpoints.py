"""Endpoint modules: one Python file per device or client team, loaded from a directory.

A module ``ps3.py`` serves the paths under ``/ps3/``: its ``ROUTES`` maps the rest of the
path to a handler, ``ROUTES = {"home": home}`` serving ``/ps3/home``. A handler takes the
:class:`EndpointRequest` and returns a JSON-able value, an ``Observable`` of one, or
``(status, value)``. Files are checked for changes at most once a second and reloaded
without a restart; a module that fails to load makes only its own paths answer 500,
with the error.

A module is compiled from its source each time it changes, never from a cached ``.pyc``:
Python checks those by whole-second mtime and size, so a fix of the same length saved
within the second of the last load kept the broken code running. It is in
``sys.modules`` while it runs (``dataclasses``, ``pickle`` and ``typing.get_type_hints``
look classes' modules up there).
"""

from __future__ import annotations

import importlib.util
import sys
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
#: Endpoint module ``NAME`` runs as module ``endpoints.NAME``.
MODULE_PREFIX = "endpoints."


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
    #: (mtime_ns, size) when loaded: a change of either reloads it
    stamp: tuple[int, int]
    routes: dict[str, Handler] = field(default_factory=dict)
    error: str | None = None


class EndpointDirectory:
    def __init__(self, directory: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self._clock = clock
        #: whether the front's own paths (``/metrics``, ``/dashboard``) take a module's
        #: (set by the front)
        self.shadowed: Callable[[str], bool] = lambda name: False
        self._modules: dict[str, LoadedModule] = {}
        self._scanned_s = float("-inf")

    def _shadowed(self, name: str, file: Path, stamp: tuple[int, int]) -> LoadedModule | None:
        """A module whose paths the front's own serve instead: said, never silently unreachable."""
        if not self.shadowed(name):
            return None
        error = f"endpoint module {file.name} is shadowed by the front's own /{name}: rename it"
        log.error("endpoint_module_broken", module=name, file=str(file), error=error, where=None)
        return LoadedModule(name, stamp, error=error)

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
            stat = file.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            known = self._modules.get(name)
            if known is None or known.stamp != stamp:
                self._modules[name] = self._shadowed(name, file, stamp) or _load(name, file, stamp)
        for gone in set(self._modules) - present:
            del self._modules[gone]
            sys.modules.pop(f"{MODULE_PREFIX}{gone}", None)
            log.info("endpoint_module_removed", module=gone)


def _load(name: str, file: Path, stamp: tuple[int, int]) -> LoadedModule:
    """Run ``file``'s source afresh as module ``endpoints.NAME``; any failure is kept, not raised."""
    module_name = f"{MODULE_PREFIX}{name}"
    previous = sys.modules.get(module_name)
    try:
        spec = importlib.util.spec_from_file_location(module_name, file)
        if spec is None:
            raise ImportError(f"no loader for {file.name}")
        module: ModuleType = importlib.util.module_from_spec(spec)
        # dont_inherit: not this module's `from __future__ import annotations` (every
        # annotation in the endpoint a string: singledispatch, get_type_hints fail on them)
        code = compile(file.read_bytes(), str(file), "exec", dont_inherit=True)
        sys.modules[module_name] = module
        exec(code, module.__dict__)  # noqa: S102 - the operator's own endpoint module
        routes = getattr(module, "ROUTES", None)
        if not isinstance(routes, dict) or not all(isinstance(k, str) and callable(v) for k, v in routes.items()):
            raise TypeError(f"{file.name} must define ROUTES, a dict of path -> handler function")
    except Exception as exc:  # noqa: BLE001 - a broken module must not take the front down
        if previous is None:
            sys.modules.pop(module_name, None)
        else:
            sys.modules[module_name] = previous
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        where = where_in_endpoints(exc)
        log.error("endpoint_module_broken", module=name, file=str(file), error=error, where=where)
        at = f" (at {where})" if where and not isinstance(exc, SyntaxError) else ""  # a SyntaxError says where
        return LoadedModule(name, stamp, error=f"endpoint module {file.name} does not load: {error}{at}")
    log.info("endpoint_module_loaded", module=name, routes=sorted(routes))
    return LoadedModule(name, stamp, {route.strip("/"): handler for route, handler in routes.items()})


def where_in_endpoints(error: BaseException) -> str | None:
    """``file.py:LINE`` of the innermost frame of an endpoint module in ``error``'s
    traceback: where an engineer looks first (the error's text alone names no line)."""
    where = None
    for frame, line in traceback.walk_tb(error.__traceback__):
        if frame.f_globals.get("__name__", "").startswith(MODULE_PREFIX):
            where = f"{Path(frame.f_code.co_filename).name}:{line}"
    return where
