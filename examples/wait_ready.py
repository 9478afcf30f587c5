"""``python -m examples.wait_ready --config F``: wait until the broker answers and the example pool is up."""

from __future__ import annotations

import argparse
import sys
import time

from broker.control_client import ControlError, control_request
from shared.config import load

WAIT_S = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--pool", default="example")
    args = parser.parse_args()
    endpoint = load(args.config).endpoints["control"]
    deadline_s = time.monotonic() + WAIT_S
    while time.monotonic() < deadline_s:
        try:
            pool = control_request(endpoint, "status", timeout_s=0.5)["pools"].get(args.pool)
        except ControlError:
            pool = None
        if pool and pool["workers"] > 0:
            print(f"broker is up; pool {args.pool!r} has {pool['workers']} workers")
            return 0
        time.sleep(0.2)
    print(f"seawall did not come up within {WAIT_S:g} s; see run/logs/", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
