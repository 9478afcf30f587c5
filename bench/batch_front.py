"""A front of the batching benchmark, driven over stdin/stdout by ``bench/batching.py``.

``python bench/batch_front.py --config PATH`` configures ``api.Client`` and answers one
JSON line on stdout per JSON line on stdin:

* ``{"warm": N}``: N ``Warm`` calls, one after another, then N at once (sockets connected,
  workers awake); answers ``{"ready": true}``.
* ``{"go": COMMAND, "count": N, "offset": K, "concurrent": true}``: N calls of COMMAND
  with ``item_id`` K .. K+N-1, all at once as greenlets (or one after another); answers
  with each call's latency in ms and the counts of values, fallbacks and errors.

Times are ``time.monotonic()`` (CLOCK_MONOTONIC, comparable across processes on one host).
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any

import gevent
from gevent.fileobject import FileObject

import api
from batch_commands import COMMANDS, FALLBACK_VALUE, Warm


def warm(client: api.Client, count: int) -> dict[str, Any]:
    for item_id in range(count):
        Warm(item_id=item_id).execute(client=client)
    gevent.joinall([gevent.spawn(Warm(item_id=item_id).execute, client) for item_id in range(count)],
                   raise_error=True)
    return {"ready": True}


def burst(client: api.Client, request: dict[str, Any]) -> dict[str, Any]:
    received_s = time.monotonic()
    command_class = COMMANDS[request["go"]]
    offset = request.get("offset", 0)
    latencies_ms: list[float] = []
    outcomes: Counter[str] = Counter()

    def one(item_id: int) -> None:
        started_s = time.perf_counter()
        try:
            value = command_class(item_id=item_id).execute(client=client)
        except api.CommandError as exc:
            outcomes[f"error:{exc.failure}"] += 1
            value = None
        else:
            if value == FALLBACK_VALUE:
                outcomes["fallback"] += 1
            elif value == {"id": item_id}:
                outcomes["value"] += 1
            else:
                outcomes["wrong_value"] += 1
        latencies_ms.append((time.perf_counter() - started_s) * 1000)

    item_ids = range(offset, offset + request["count"])
    if request.get("concurrent", True):
        gevent.joinall([gevent.spawn(one, item_id) for item_id in item_ids], raise_error=True)
    else:
        for item_id in item_ids:
            one(item_id)
    return {"received_s": received_s, "done_s": time.monotonic(), "latencies_ms": latencies_ms,
            "outcomes": dict(outcomes)}


def main() -> None:
    client = api.configure(sys.argv[sys.argv.index("--config") + 1])
    stdin = FileObject(sys.stdin, "r")
    for line in stdin:
        request = json.loads(line)
        answer = warm(client, request["warm"]) if "warm" in request else burst(client, request)
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
