"""``python -m broker --config F`` (also ``seawall-broker``): run the broker."""

from __future__ import annotations

import argparse
import sys

from shared.config import ConfigError, load
from shared.logging import configure_logging, refuse_to_start
from shared.security import check_keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seawall-broker", description="Run the seawall broker.")
    parser.add_argument("--config", help="config file (default: $SEAWALL_CONFIG)")
    args = parser.parse_args(argv)
    configure_logging("broker")
    try:
        config = load(args.config)
        check_keys(config, ("broker",))
    except ConfigError as exc:
        return refuse_to_start("seawall-broker", f"bad config: {exc}")
    from broker.server import Broker

    Broker(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
