"""``python -m workers --dependency NAME --commands MODULE[,MODULE] [--slots N]``.

Also installed as ``seawall-worker``. Exit codes: see ``workers/exit_codes.py``.
"""

from gevent import monkey

monkey.patch_all()  # before anything else imports socket, time, threading

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from shared.config import ConfigError, load  # noqa: E402
from shared.logging import configure_logging, refuse_to_start  # noqa: E402



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seawall-worker", description="Run one worker of a dependency's pool.")
    parser.add_argument("--config", help="config file (default: $SEAWALL_CONFIG)")
    parser.add_argument("--dependency", required=True, help="the pool this worker serves")
    parser.add_argument("--commands", required=True, help="comma-separated modules defining its commands")
    parser.add_argument("--slots", type=int, default=1, help="calls run at once (default 1)")
    args = parser.parse_args(argv)
    configure_logging("worker")
    if not 1 <= args.slots <= 10_000:
        return refuse_to_start("seawall-worker", f"--slots must be in [1, 10000], got {args.slots}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: command modules beside the config
    from shared.security import check_keys
    from workers.registry import RegistryError, load_commands
    from workers.worker import Worker

    try:
        config = load(args.config)
        check_keys(config, ("worker",))
        commands = load_commands([m.strip() for m in args.commands.split(",") if m.strip()], args.dependency)
    except (ConfigError, RegistryError) as exc:
        return refuse_to_start("seawall-worker", str(exc))
    return Worker(config, args.dependency, commands, args.slots).run()


if __name__ == "__main__":
    sys.exit(main())
