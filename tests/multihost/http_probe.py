"""An HTTP client that runs inside a test host: GETs the URLs it reads, prints the answers.

The test process lives in the root network namespace and cannot reach the hosts'
addresses; this probe, started in a host with ``ip netns exec``, can. Each input line is
a URL; each output line is JSON ``{"status": 200, "body": ..., "elapsed_ms": 12.3}``, or
``{"status": null, "error": "...", "elapsed_ms": ...}`` when nothing answered. Standard
library only, so it starts in a few tens of milliseconds.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from typing import Any

#: Longest wait for one answer; the test's own deadlines are shorter.
REQUEST_TIMEOUT_S = 10.0


def get(url: str) -> dict[str, Any]:
    started_s = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S) as response:
            answer = {"status": response.status, "body": json.loads(response.read())}
    except urllib.error.HTTPError as error:
        answer = {"status": error.code, "body": json.loads(error.read() or b"null")}
    except (OSError, ValueError) as error:
        answer = {"status": None, "error": f"{type(error).__name__}: {error}"}
    answer["elapsed_ms"] = round((time.monotonic() - started_s) * 1000, 1)
    return answer


def main() -> None:
    for line in sys.stdin:
        url = line.strip()
        if url:
            print(json.dumps(get(url)), flush=True)


if __name__ == "__main__":
    main()
