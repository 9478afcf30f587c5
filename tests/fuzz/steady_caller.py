"""Correct traffic beside the fuzz: a caller that runs Echo every few ms and checks each value.

Its own process (``python tests/fuzz/steady_caller.py --out DIR --config F``), so the
latencies it measures are the broker's and the workers', not the fuzz sender's. It warms
up until its first correct answer, writes ``DIR/ready``, calls until ``DIR/stop``
appears, and writes ``DIR/summary.json``: calls made, correct values, wrong values,
errors by failure and cause, and latencies.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from api import Client, CommandError  # noqa: E402
from sample_commands import Echo  # noqa: E402
from shared.config import load  # noqa: E402

#: Pause between two calls.
INTERVAL_S = 0.005
#: How long warming up may take before the caller gives up.
WARM_UP_S = 15.0


def _call(client: Client, number: int) -> tuple[str, float]:
    """("correct" | "wrong: VALUE" | "FAILURE: Cause", latency in ms) of one Echo call."""
    text = f"steady {number}"
    started_s = time.perf_counter()
    try:
        value = Echo(text=text).execute(client=client)
        answer = "correct" if value == text.upper() else f"wrong: {value!r:.100}"
    except CommandError as exc:
        answer = f"{exc.failure}: {exc.cause.type_name if exc.cause else type(exc).__name__}"
    return answer, (time.perf_counter() - started_s) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    client = Client(load(args.config))
    deadline_s = time.monotonic() + WARM_UP_S
    while _call(client, -1)[0] != "correct":
        if time.monotonic() > deadline_s:
            raise SystemExit("steady caller: no correct answer while warming up")
        gevent.sleep(0.05)
    (out / "ready").touch()
    answers: Counter[str] = Counter()
    latencies_ms: list[float] = []
    stop = out / "stop"
    while not stop.exists():
        answer, latency_ms = _call(client, len(latencies_ms))
        answers[answer] += 1
        latencies_ms.append(latency_ms)
        gevent.sleep(INTERVAL_S)
    latencies_ms.sort()
    summary = {
        "calls": len(latencies_ms),
        "correct": answers.pop("correct", 0),
        "other_answers": dict(answers),
        "latency_p50_ms": round(latencies_ms[len(latencies_ms) // 2], 2) if latencies_ms else None,
        "latency_p99_ms": round(latencies_ms[int(len(latencies_ms) * 0.99)], 2) if latencies_ms else None,
        "latency_max_ms": round(latencies_ms[-1], 2) if latencies_ms else None,
    }
    (out / "summary.json").write_text(json.dumps(summary))
    client.close()


if __name__ == "__main__":
    main()
