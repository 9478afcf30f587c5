"""The loop of a caller process (``peers/caller.py``): rounds in, figures out.

Kept apart from ``caller.py`` so that a gevent caller monkey-patches before this module,
and what it imports, is loaded.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from typing import Any, TextIO

from measuring import Samples, Window, percentile
from peers.probe import ProcessProbe

#: Percentiles the summary gives, by name.
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99}


def serve(peer: str, variant: str, settings_json: str, use_gevent: bool) -> int:
    answers = _protocol_output()
    caller = importlib.import_module(f"peers.{peer}").make_caller(variant, json.loads(settings_json))
    samples: dict[str, Samples] = {}
    lines = _request_lines(use_gevent)
    try:
        print(json.dumps({"ready": os.getpid()}), file=answers, flush=True)
        for line in lines:
            request = json.loads(line)
            try:
                if "round" in request:
                    answer = run_round(caller, request["round"], samples)
                else:
                    answer = summary(samples)
            except Exception as exc:  # a failed round is reported and the caller keeps serving
                traceback.print_exc()
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), file=answers, flush=True)
    finally:
        caller.close()
    return 0


def run_round(caller: Any, round_request: dict[str, Any], samples: dict[str, Samples]) -> dict[str, Any]:
    pids_by_role = {"caller": [os.getpid()], **caller.own_pids()}
    for role, pids in round_request.get("pids", {}).items():
        pids_by_role.setdefault(role, []).extend(pids)
    probe = ProcessProbe(pids_by_role)
    window = Window(round_request["warmup_calls"], round_request["duration_s"], on_measuring=probe.start,
                    max_calls=round_request["max_calls"])
    caller.measure(round_request["workload"], round_request["callers"], window)
    usage = probe.stop()
    samples.setdefault(f"{round_request['workload']}/{round_request['callers']}", Samples()).add(window)
    return {"finished": window.finished_in_window, "calls": window.calls_after_warmup,
            "measured_s": window.duration_s, **usage}


def summary(samples: dict[str, Samples]) -> dict[str, Any]:
    latency_us: dict[str, dict[str, float]] = {}
    for key, pooled in samples.items():
        ordered = sorted(pooled.latencies_us)
        latency_us[key] = {name: percentile(ordered, fraction) for name, fraction in PERCENTILES.items()}
        latency_us[key]["count"] = len(ordered)
    return {"latency_us": latency_us}


def _protocol_output() -> TextIO:
    """stdout for answers only: anything else written to fd 1 goes to stderr (the log)."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return answers


def _request_lines(use_gevent: bool) -> Any:
    """stdin's lines; under gevent read cooperatively, so the client's greenlets run between rounds."""
    if use_gevent:
        from gevent.fileobject import FileObject

        return FileObject(sys.stdin, "r")
    return sys.stdin
