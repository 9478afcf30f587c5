"""``seawall logs``: read, filter and pretty-print (or follow) the JSON-line logs of every process.

    seawall --config seawall.toml logs --follow --event breaker_opened
    seawall logs run/logs/broker.log --since 10m --level warning --json | jq .command
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

from broker.log_files import Follower, LogFile, LogSources, merged_records
from broker.log_format import Formatter
from broker.log_records import LEVEL_ORDER, LogFilter, LogRecord, parse_since
from shared.config import CONFIG_ENV, ConfigError, load, run_dir_despite_errors

#: Exit status of a missing file or an unreadable config (argparse's usage errors exit 2).
EXIT_ERROR = 1

Render = Callable[[LogRecord], str]


def add_logs_parser(commands: Any) -> None:
    """Register ``seawall logs`` on the CLI's subcommands."""
    logs = commands.add_parser(
        "logs", help="pretty-print, filter and follow the JSON-line logs (default: every *.log "
                     "under RUN_DIR/logs of the config)",
        description="Read seawall's JSON-line logs, interleaved by time; --follow to tail them. "
                    "Patterns may be globs (Get*); repeat an option or give a comma list for several.")
    logs.add_argument("files", nargs="*", metavar="FILE",
                      help="log files or directories of *.log files (default: RUN_DIR/logs of --config)")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="keep reading as lines are appended, across rotation and new files; Ctrl-C stops")
    logs.add_argument("-n", "--lines", type=_count, default=None, metavar="N",
                      help="only the last N matching lines (with --follow: show them first; default 0)")
    # dest: not "command", which names the subcommand in seawall's own parser
    logs.add_argument("--command", dest="command_patterns", action="append", metavar="C",
                      help="command key (field command)")
    logs.add_argument("--event", dest="event_patterns", action="append", metavar="E",
                      help="event name, e.g. breaker_opened")
    logs.add_argument("--process", dest="process_patterns", action="append", metavar="P",
                      help="broker, worker, front, caller, ...")
    logs.add_argument("--level", type=_level, metavar="L", help="this level and above (debug, info, warning, error)")
    logs.add_argument("--since", type=_since, metavar="T",
                      help="30s, 5m, 2h, 1d ago, HH:MM[:SS] today, or an ISO date-time (local unless it says)")
    logs.add_argument("--json", action="store_true", help="the matching raw JSON lines, for jq")
    logs.add_argument("--color", "--colour", dest="colour", action=argparse.BooleanOptionalAction, default=None,
                      help="colour the output (default: when stdout is a terminal and NO_COLOR is unset)")


def _count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count of lines (0 or more)")
    return count


def _level(text: str) -> str:
    if text.lower() not in LEVEL_ORDER:
        raise argparse.ArgumentTypeError(f"{text!r} is not a level (debug, info, warning, error, critical)")
    return text.lower()


def _since(text: str) -> datetime:
    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run_logs(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run ``seawall logs`` with parsed arguments; the exit status."""
    try:
        sources = _sources(args)
        log_filter = LogFilter.from_options(args.command_patterns, args.event_patterns, args.process_patterns,
                                            args.level, args.since, raw_lines=not args.json)
        colour = args.colour if args.colour is not None else out.isatty() and not os.environ.get("NO_COLOR")
        several = len(sources.current_paths()) > 1 or bool(sources.directories)
        render = _raw_json if args.json else Formatter(colour=colour, show_source=several).format
        if args.follow:
            _follow(sources, log_filter, args.lines or 0, render, out)
        else:
            _print_once(sources, log_filter, args.lines, render, out)
    except KeyboardInterrupt:  # Ctrl-C is how one stops following
        pass
    except BrokenPipeError:  # `seawall logs | head`: the reader is gone, nothing left to do
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    except (ConfigError, OSError) as exc:  # a missing or unreadable file, a bad config
        print(f"seawall logs: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _run_dir(config_path: str | None) -> Path:
    """The config's run directory; a config that does not validate still names it (its
    processes' logs then say why they did not start), so the logs are read all the same."""
    try:
        return load(config_path).run_dir
    except ConfigError as exc:
        path = config_path or os.environ.get(CONFIG_ENV)
        if not path or not Path(path).is_file():
            raise
        run_dir = run_dir_despite_errors(path)
        print(f"seawall logs: {exc}\nseawall logs: reading the logs under {run_dir} all the same", file=sys.stderr)
        return run_dir


def _sources(args: argparse.Namespace) -> LogSources:
    """What to read; raises FileNotFoundError naming a missing file (unless following)."""
    if not args.files:
        logs_dir = _run_dir(args.config) / "logs"
        if not args.follow and not logs_dir.is_dir():
            raise FileNotFoundError(f"no log directory {logs_dir} (is seawall running under supervisord? "
                                    "or name the files: seawall logs FILE...)")
        return LogSources(directories=[logs_dir])
    sources = LogSources()
    for name in args.files:
        path = Path(name)
        if path.is_dir():
            sources.directories.append(path)
        elif path.exists() or args.follow:
            sources.paths.append(path)
        else:
            raise FileNotFoundError(f"no such log file: {path}")
    return sources


def _read(sources: LogSources) -> list[LogFile]:
    files = []
    for path in sources.current_paths():
        log_file = LogFile(path)
        if log_file.open():
            files.append(log_file)
    return files


def _matching(files: list[LogFile], log_filter: LogFilter, final: bool = True) -> Iterable[LogRecord]:
    return (record for record in merged_records(files, final) if log_filter.accepts(record))


def _print(records: Iterable[LogRecord], last: int | None, render: Render, out: TextIO) -> None:
    if last is not None:
        records = collections.deque(records, maxlen=last)
    for record in records:
        out.write(render(record) + "\n")
    out.flush()


def _print_once(sources: LogSources, log_filter: LogFilter, last: int | None, render: Render, out: TextIO) -> None:
    files = _read(sources)
    try:
        _print(_matching(files, log_filter), last, render, out)
    finally:
        for log_file in files:
            log_file.close()


def _follow(sources: LogSources, log_filter: LogFilter, last: int, render: Render, out: TextIO) -> None:
    files = []
    if last:  # the history first, in time order, then new lines as they come
        files = _read(sources)
        _print(_matching(files, log_filter, final=False), last, render, out)
    follower = Follower(sources, files)
    try:
        for batch in follower.batches():
            _print((record for record in batch if log_filter.accepts(record)), None, render, out)
    finally:
        follower.close()


def _raw_json(record: LogRecord) -> str:
    """The line as written, for jq (the filter has left raw, non-JSON lines out)."""
    return record.raw.strip()
