"""Every event the processes log is in docs/logging.md, the page on-call engineers read.

The events are found in the source (a logger method called with the event name as a
string literal, or with one of two, ``(log.info if x else log.warning)("a" if x else "b")``),
so a new event with no line in the table fails here, not at 3 a.m.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "broker", "shared", "workers")
LOG_METHODS = frozenset({"debug", "info", "warning", "error", "critical", "exception"})
EVENT_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _strings(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def _is_log_method(node: ast.expr) -> bool:
    if isinstance(node, ast.IfExp):
        return _is_log_method(node.body) and _is_log_method(node.orelse)
    return isinstance(node, ast.Attribute) and node.attr in LOG_METHODS


def logged_events() -> dict[str, str]:
    """Event name -> where it is first logged (path:line)."""
    events: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call) and node.args and _is_log_method(node.func):
                    for name in _strings(node.args[0]):
                        if EVENT_NAME.fullmatch(name):
                            events.setdefault(name, f"{path.relative_to(ROOT)}:{node.lineno}")
    return events


def test_the_scan_finds_the_events_it_should():
    events = logged_events()

    # one plain call, one logged through an IfExp of loggers and names, one from workers
    assert {"broker_started", "worker_left", "worker_lost", "broker_silent"} <= events.keys()
    assert len(events) > 40


def test_every_logged_event_is_documented():
    documented = (ROOT / "docs" / "logging.md").read_text()

    missing = {name: where for name, where in logged_events().items() if f"`{name}`" not in documented}

    assert not missing, f"events logged but not in docs/logging.md: {missing}"
