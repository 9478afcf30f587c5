"""``python -m examples.caller --config F``: issue example commands and log what comes back.

A few calls a second, forever (supervisord stops it), each logged as one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import time

import gevent

import api
from examples.commands import GetGreeting, GetUserName
from shared.logging import configure_logging, get_logger

#: Pause between rounds of calls.
ROUND_INTERVAL_S = 0.5

log = get_logger("examples.caller")


def one_round(client: api.Client, user_id: int) -> None:
    started_s = time.monotonic()
    greeting = GetGreeting(user_id=user_id).queue(client=client)
    name = GetUserName(user_id=user_id).queue(client=client)
    gevent.joinall([greeting, name])
    fields = {"user_id": user_id, "latency_ms": round((time.monotonic() - started_s) * 1000, 3)}
    if name.successful():
        log.info("greeted", greeting=greeting.value, name=name.value, **fields)
    else:
        error = name.exception
        log.warning("greeted_without_name", greeting=greeting.value, outcome=getattr(error, "failure", None),
                    error=str(error), **fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", help="config file (default: $SEAWALL_CONFIG)")
    args = parser.parse_args()
    configure_logging("caller")
    client = api.configure(args.config)
    for user_id in itertools.count(1):
        one_round(client, user_id % 1000)
        gevent.sleep(ROUND_INTERVAL_S)


if __name__ == "__main__":
    main()
