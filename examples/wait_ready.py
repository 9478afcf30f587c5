"""``python -m examples.wait_ready --config F``: wait until the broker answers and every pool
named in the config (``[pools.NAME]``) has a worker."""

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
    args = parser.parse_args()
    config = load(args.config)
    deadline_s = time.monotonic() + WAIT_S
    waiting_for = sorted(config.pools)
    while time.monotonic() < deadline_s:
        try:
            pools, answered = control_request(config.endpoints["control"], "status", timeout_s=0.5, config=config)["pools"], True
        except ControlError:
            pools, answered = {}, False
        waiting_for = [name for name in sorted(config.pools) if not pools.get(name, {}).get("workers")]
        if answered and not waiting_for:
            print(f"broker is up; {len(config.pools)} pools have workers")
            return 0
        time.sleep(0.2)
    print(f"still waiting for pools: {', '.join(waiting_for)}", file=sys.stderr)
    print(f"seawall did not come up within {WAIT_S:g} s; see run/logs/", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
