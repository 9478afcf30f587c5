"""Logging setup: structlog, one JSON object per line on stdout.

The only module that configures structlog. Every line carries ``timestamp``, ``level``,
``process`` (broker, worker, caller, ...) and ``pid``, so ``seawall logs`` and ``jq`` can
follow one process or one command across a host.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog
from structlog.typing import EventDict

#: Environment variable that sets the level (debug logs every call; info logs faults).
LOG_LEVEL_ENV = "SEAWALL_LOG_LEVEL"
#: Whether to log one line per call. Read once: a filtered-out structlog call still costs
#: microseconds, too much for a call path that costs a few.
LOG_EACH_CALL = os.environ.get(LOG_LEVEL_ENV, "").lower() == "debug"


def configure_logging(process: str, level: str | None = None) -> None:
    """Send this process's structlog events to stdout as JSON lines."""
    level_name = (level or os.environ.get(LOG_LEVEL_ENV) or "info").upper()
    level_number = logging.getLevelNamesMapping().get(level_name)
    if level_number is None:
        raise ValueError(f"{LOG_LEVEL_ENV}={level_name!r} is not a log level (debug, info, warning, error)")
    process_fields = {"process": process, "pid": os.getpid()}

    def add_process_fields(logger: Any, method: str, event: EventDict) -> EventDict:
        # Not contextvars: each greenlet has its own context and would lose them.
        for key, value in process_fields.items():
            event.setdefault(key, value)
        return event

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_process_fields,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_number),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )


def _quiet_until_configured() -> None:
    """A library imported by service code logs warnings and up until a process sets it up."""
    if not structlog.is_configured():
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


_quiet_until_configured()


#: Exit status of a process that refuses to start (bad config, arguments or command
#: modules): restarting will not help until someone fixes them.
EXIT_BAD_SETUP = 2


def refuse_to_start(program: str, problem: str) -> int:
    """Say why a process will not start, twice: plainly on stderr for whoever ran it, and
    as a ``startup_refused`` line in its log, where ``seawall logs --level error`` finds
    it when supervisord runs it. Returns EXIT_BAD_SETUP."""
    print(f"{program}: {problem}", file=sys.stderr)
    get_logger(program).error("startup_refused", error=problem, exit_code=EXIT_BAD_SETUP)
    sys.stdout.flush()
    return EXIT_BAD_SETUP


def get_logger(name: str) -> Any:
    """A structlog logger; ``name`` goes into each line as ``component``."""
    return structlog.get_logger(component=name)
