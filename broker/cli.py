"""``seawall``: the operator's command line (status now; breakers, config, chaos, scale later)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from broker.control_client import ControlError, control_request
from shared.config import ConfigError, load


def _format_status(status: dict[str, Any]) -> str:
    lines = [f"broker up {status['uptime_s']:.0f} s, {status['calls_in_flight']} calls in flight", "",
             f"{'POOL':<20} {'WORKERS':>7} {'SLOTS':>5} {'BUSY':>4} {'QUEUED':>6} {'REJECTED':>8}"]
    for name, pool in status["pools"].items():
        rejected = pool["events"].get("THREAD_POOL_REJECTED", 0)
        lines.append(f"{name:<20} {pool['workers']:>7} {pool['slots']:>5} {pool['busy']:>4} "
                     f"{pool['queued']:>4}/{pool['queue_size']:<1} {rejected:>8}")
        for worker in pool["worker_list"]:
            state = " draining" if worker["draining"] else ""
            lines.append(f"  pid {worker['pid']:<8} slots {worker['slots']} busy {worker['busy']} "
                         f"served {worker['calls_served']} up {worker['uptime_s']:.0f} s{state}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seawall", description="Operate a running seawall.")
    parser.add_argument("--config", help="config file (default: $SEAWALL_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="pools, workers and commands")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    commands.add_parser("ping", help="is the broker answering?")
    args = parser.parse_args(argv)
    try:
        config = load(args.config)
        data = control_request(config.endpoints["control"], args.command)
    except (ConfigError, ControlError) as exc:
        print(f"seawall: {exc}", file=sys.stderr)
        return 1
    if args.command == "status":
        print(json.dumps(data, indent=2) if args.json else _format_status(data))
    else:
        print("broker is answering")
    return 0


if __name__ == "__main__":
    sys.exit(main())
