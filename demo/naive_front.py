"""``python -m demo.naive_front --config F``: the demo endpoints without seawall, for comparison.

The same endpoint modules, served by the same :func:`api.front.serve`, but every command's
``run()`` happens right here in the front's greenlet: no worker pool, no queue, no
timeout, no circuit breaker, no fallback. The process-default client is replaced by a
:class:`NaiveClient` whose ``execute()`` just calls ``run()`` (``run_batch([self])`` for a
collapsing command) and lets any exception propagate, so only the endpoint's own guards
(``views.section``) decide what a failure costs. This is what seawall prevents.

The simulated backends run in this process, so ``seawall chaos`` cannot reach them;
latency is injected here instead, by wrapping ``demo.backends.call`` from outside. On every
backend call the injection is read from the JSON file named by ``$SEAWALL_NAIVE_CHAOS_FILE``
(``{"dependency": "recommendations", "latency_ms": 10000}``; missing, empty or ``{}`` = none),
so a benchmark can switch it on and off while the front runs; without that variable,
``$SEAWALL_NAIVE_LATENCY_DEP`` and ``$SEAWALL_NAIVE_LATENCY_MS`` give a fixed injection.
"""

from gevent import monkey

monkey.patch_all()  # the backends' time.sleep must be cooperative, as in api/__main__.py

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.event import AsyncResult  # noqa: E402

from shared.config import Config, ConfigError, load  # noqa: E402
from shared.logging import configure_logging, get_logger  # noqa: E402

log = get_logger("demo.naive_front")

#: Environment: a JSON file read on every backend call ({"dependency": ..., "latency_ms": ...}).
CHAOS_FILE_ENV = "SEAWALL_NAIVE_CHAOS_FILE"
#: Environment: a fixed injection, used when no chaos file is named.
LATENCY_DEP_ENV = "SEAWALL_NAIVE_LATENCY_DEP"
LATENCY_MS_ENV = "SEAWALL_NAIVE_LATENCY_MS"
#: Longest latency injected, whatever the file says (ms).
MAX_INJECTED_MS = 600_000.0
EXIT_BAD_SETUP = 2


def injected_latency(dependency: str) -> float:
    """Seconds of latency to add to a call of ``dependency`` now; 0.0 for none."""
    path = os.environ.get(CHAOS_FILE_ENV)
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read()
            settings = json.loads(text) if text.strip() else {}
        except (OSError, ValueError):
            return 0.0  # no file, or one being rewritten: no injection
        if not isinstance(settings, dict):
            return 0.0
        target, latency_ms = settings.get("dependency"), settings.get("latency_ms", 0)
    else:
        target, latency_ms = os.environ.get(LATENCY_DEP_ENV), os.environ.get(LATENCY_MS_ENV, "0")
    if not target or target != dependency:
        return 0.0
    try:
        latency_ms = float(latency_ms)
    except (TypeError, ValueError):
        return 0.0
    return min(max(latency_ms, 0.0), MAX_INJECTED_MS) / 1000


def install_latency_injection() -> None:
    """Wrap ``demo.backends.call`` (what every demo command calls) with the injection."""
    from demo import backends

    if getattr(backends.call, "naive_chaos", False):
        return
    original = backends.call

    def call(name: str) -> None:
        delay_s = injected_latency(name)
        if delay_s:
            gevent.sleep(delay_s)
        original(name)

    call.naive_chaos = True  # type: ignore[attr-defined]
    backends.call = call


class NaiveClient:
    """A stand-in for :class:`api.Client` that runs every command here, unprotected."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def execute(self, command: Any) -> Any:
        """``command.run()`` in this greenlet; its exception, if any, propagates."""
        command_class = type(command)
        if command_class.collapse is not None:
            result = command_class.run_batch([command])[0]
            if isinstance(result, BaseException):
                raise result
            return result
        return command.run()

    def queue(self, command: Any) -> AsyncResult:
        from api.context import future_of  # the request context follows the greenlet

        return future_of(self.execute, command)

    def close(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="seawall-naive-front",
                                     description="Serve the demo endpoints with every command run in-process.")
    parser.add_argument("--config", help="config file (default: $SEAWALL_CONFIG)")
    args = parser.parse_args(argv)
    configure_logging("naive-front")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    import api.client
    from api.front import serve

    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"seawall-naive-front: {exc}", file=sys.stderr)
        return EXIT_BAD_SETUP
    install_latency_injection()
    api.client._default_client = NaiveClient(config)  # noqa: SLF001 - the point of this front
    log.info("naive_front", chaos_file=os.environ.get(CHAOS_FILE_ENV))
    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
