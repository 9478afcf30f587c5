"""Nothing that arrives on a socket can name code to run: no pickle or its kin anywhere in
seawall, and msgpack decoded only in the shared/protocol package (a worker runs only the commands
registered for its pool; test_worker_fuzz checks that on a live worker)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: seawall's own code: the packages and what ships beside them (benchmarks may speak raw msgpack).
CODE_DIRS = ("api", "broker", "shared", "workers", "demo", "endpoints", "examples")
SERIALIZERS_OF_CODE = re.compile(
    r"^\s*(?:import|from)\s+(?:pickle|cPickle|_pickle|marshal|shelve|dill|cloudpickle|jsonpickle)\b", re.MULTILINE)
MSGPACK_IMPORT = re.compile(r"^\s*(?:import|from)\s+msgpack\b", re.MULTILINE)


def _modules(dirs: tuple[str, ...] = CODE_DIRS) -> list[Path]:
    return [path for name in dirs if (ROOT / name).is_dir() for path in sorted((ROOT / name).rglob("*.py"))]


def test_no_seawall_module_imports_pickle_or_its_kin():
    offenders = [str(path.relative_to(ROOT)) for path in _modules((*CODE_DIRS, "bench"))
                 if SERIALIZERS_OF_CODE.search(path.read_text())]
    assert offenders == []


def test_only_the_protocol_package_imports_msgpack():
    importers = [str(path.relative_to(ROOT)) for path in _modules() if MSGPACK_IMPORT.search(path.read_text())]
    assert importers and all(importer.startswith("shared/protocol/") for importer in importers), importers
