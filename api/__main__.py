"""``python -m api --config F``: the HTTP front that serves endpoint modules."""

from gevent import monkey

monkey.patch_all()  # endpoint code may use blocking libraries; make them cooperative

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from shared.config import ConfigError  # noqa: E402
from shared.logging import configure_logging, refuse_to_start  # noqa: E402

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seawall-front", description="Serve endpoint modules over HTTP.")
    parser.add_argument("--config", help="config file (default: $SEAWALL_CONFIG)")
    args = parser.parse_args(argv)
    configure_logging("front")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: the modules endpoints import
    import api
    from api.front import serve
    from shared.security import check_keys

    try:
        client = api.configure(args.config)
        check_keys(client.config, ("front",))
    except ConfigError as exc:
        return refuse_to_start("seawall-front", f"bad config: {exc}")
    serve(client.config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
