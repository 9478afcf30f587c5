"""A front process for tests: runs commands it is told to on stdin, answers on stdout.

Each input line is JSON ``{"command": NAME, "arguments": {...}, "count": N}``; the N
calls run concurrently and one output line lists, per call, ``{"value": ...}`` or
``{"error": FAILURE}``. ``{"breaker": KEY}`` answers with the state this front knows.
Tests start two of these to see what fronts share.
"""

from __future__ import annotations

import json
import sys

import gevent
from gevent.fileobject import FileObject

import api
import sample_commands


def run_calls(client: api.Client, request: dict) -> list[dict]:
    command_class = getattr(sample_commands, request["command"])

    def one() -> dict:
        try:
            return {"value": command_class(**request.get("arguments", {})).execute(client=client)}
        except api.CommandError as exc:
            return {"error": str(exc.failure)}

    calls = [gevent.spawn(one) for _ in range(request.get("count", 1))]
    gevent.joinall(calls)
    return [call.value for call in calls]


def main() -> None:
    client = api.configure(sys.argv[sys.argv.index("--config") + 1])
    stdin = FileObject(sys.stdin, "r")
    for line in stdin:
        request = json.loads(line)
        answer = client.breakers.state(request["breaker"]) if "breaker" in request else run_calls(client, request)
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
