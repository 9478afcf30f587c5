"""A peer's caller process: measures rounds when the suite asks, over stdin/stdout.

``python -m peers.caller --peer MODULE --variant NAME [--gevent] SETTINGS_JSON`` (with
``bench/`` on PYTHONPATH) builds ``peers.MODULE.make_caller(NAME, settings)`` and answers
one JSON line on stdout per JSON line on stdin:

* ``{"round": {"workload", "callers", "warmup_calls", "duration_s", "max_calls", "pids"}}``:
  one measuring round (``measuring.Window``); CPU and peak RSS of this process, of the
  processes it started itself and of ``pids`` (role -> pids, the peer's servers) over
  the round (``peers.probe``). Answers the round's counts and usage, or ``{"error": ...}``.
* ``{"summary": true}``: p50/p90/p99 of every (workload, callers) over all its rounds.

Each caller is a process of its own, so its CPU and memory are its peer's alone. With
``--gevent`` it monkey-patches first, as a gevent front does.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", required=True, help="module under peers/")
    parser.add_argument("--variant", required=True)
    parser.add_argument("--gevent", action="store_true", help="monkey-patch first: callers are greenlets")
    parser.add_argument("settings", help="JSON from the peer's servers")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.gevent:
        from gevent import monkey

        monkey.patch_all()
    from peers.caller_loop import serve

    return serve(args.peer, args.variant, args.settings, args.gevent)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
