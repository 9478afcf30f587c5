"""``seawall``: the operator's command line: status, breakers, settings changed live."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import xmlrpc.client
from typing import Any

from broker.control_client import ControlError, control_request
from broker.logs_cli import add_logs_parser, run_logs
from broker.supervision import ScaleError, scale, supervisor_proxy
from shared.config import Config, ConfigError, load, parse_cli_value


NEW_HELP = "the command has not been called yet: set it all the same (else a key the broker does not know is refused)"


def _format_status(status: dict[str, Any], command_text: str = "") -> str:
    lines = [f"broker up {status['uptime_s']:.0f} s, {status['calls_in_flight']} calls in flight", "",
             f"{'POOL':<24} {'WORKERS':>7} {'SLOTS':>5} {'BUSY':>4} {'QUEUED':>8} {'REJECTED':>8}"]
    for name, pool in status["pools"].items():
        rejected = pool["events"].get("THREAD_POOL_REJECTED", 0)
        queued = f"{pool['queued']}/{pool['queue_size']}"
        lines.append(f"{name:<24} {pool['workers']:>7} {pool['slots']:>5} {pool['busy']:>4} {queued:>8} {rejected:>8}")
        for worker in pool["worker_list"]:
            state = " draining" if worker["draining"] else ""
            lines.append(f"  pid {worker['pid']:<8} slots {worker['slots']} busy {worker['busy']} "
                         f"served {worker['calls_served']} up {worker['uptime_s']:.0f} s "
                         f"rss {worker['rss_mb']:.0f} MB{state}")
    lines += ["", f"{'COMMAND':<24} {'BREAKER':<10} {'ERROR%':>6} {'VOLUME':>6} {'P50MS':>8} {'P99MS':>8}"]
    for key, command in status["commands"].items():
        breaker = command["breaker"] + ("*" if command["force"] != "auto" else "")
        lines.append(f"{key:<24} {breaker:<10} {command['error_pct']:>6.1f} {command['volume']:>6} "
                     f"{command['p50_ms']:>8.2f} {command['p99_ms']:>8.2f}")
    if any(c["force"] != "auto" for c in status["commands"].values()):
        lines.append("(* forced by breaker_force)")
    if not status["commands"] and command_text:
        lines.append(f"(no command key contains {command_text!r})")
    left_out = status.get("commands_total", len(status["commands"])) - len(status["commands"])
    if left_out > 0:
        lines.append(f"... and {left_out} more commands not shown (open breakers and the busiest come first); "
                     "narrow with: seawall status --command TEXT")
    overrides = status.get("overrides") or {}
    if overrides:
        lines += ["", "RUNTIME SETTINGS (until the broker restarts; drop one with: seawall config unset KEY)"]
        lines += [f"  {key} = {value!r}" for key, value in sorted(overrides.items())]
    chaos = {name: pool["chaos"] for name, pool in status["pools"].items() if pool.get("chaos")}
    if chaos:
        lines += ["", "CHAOS (faults injected now; stop with: seawall chaos clear [POOL])"]
        lines += [f"  {name}: {', '.join(f'{key}={value:g}' for key, value in settings.items())}"
                  for name, settings in sorted(chaos.items())]
    return "\n".join(lines)


def _format_chaos(answer: dict[str, Any]) -> str:
    """What ``seawall chaos`` did, said as an operator would check it."""
    if "killed_pid" in answer:
        return (f"told worker pid {answer['killed_pid']} to die as kill -9 would "
                "(its calls are answered WORKER_LOST; supervisord, if it runs the pool, starts another)")
    if "cleared" in answer:
        where = answer["cleared"]
        return f"no faults injected now into {'every pool' if where == 'every pool' else f'pool {where}'}"
    settings = ", ".join(f"{key}={value:g}" for key, value in sorted(answer["chaos"].items()))
    pool = answer["dependency"]
    return f"pool {pool}: injecting {settings} now (stop with: seawall chaos clear {pool})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seawall", description="Operate a running seawall.")
    parser.add_argument("--config", help="config file (default: $SEAWALL_CONFIG; not needed for load)")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="pools, workers, breakers")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--command", dest="command_text", metavar="TEXT", default="",
                        help="only the commands whose key contains TEXT")
    commands.add_parser("ping", help="is the broker answering?")
    config = commands.add_parser("config", help="change a setting while running")
    config_actions = config.add_subparsers(dest="config_action", required=True)
    config_set = config_actions.add_parser("set", help="e.g. seawall config set commands.GetRatings.timeout_s 0.3")
    config_set.add_argument("key")
    config_set.add_argument("value", help="a TOML value: 0.3, 20, true, open")
    config_set.add_argument("--new", action="store_true", help=NEW_HELP)
    config_unset = config_actions.add_parser("unset", help="drop a runtime setting: the file's value or the "
                                                           "default is in force again")
    config_unset.add_argument("key")
    breaker = commands.add_parser("breaker", help="force a command's breaker open or closed, or back to auto")
    breaker.add_argument("force", choices=["open", "close", "auto"])
    breaker.add_argument("key", help="the command key")
    breaker.add_argument("--new", action="store_true", help=NEW_HELP)
    _add_chaos_parser(commands)
    scale_parser = commands.add_parser("scale", help="run N workers of a pool (through supervisord)")
    scale_parser.add_argument("pool")
    scale_parser.add_argument("count", type=int)
    _add_load_parser(commands)
    add_logs_parser(commands)
    return parser


def _add_load_parser(commands: Any) -> None:
    load_parser = commands.add_parser("load", help="bounded HTTP load on loopback, progress and percentiles "
                                                   "(needs no config)")
    load_parser.add_argument("urls", nargs="+", metavar="URL", help="http:// on 127.0.0.0/8, ::1 or localhost; "
                                                                    "requests go round-robin")
    load_parser.add_argument("--rps", type=float, required=True, help="requests started per second (<= 10000)")
    load_parser.add_argument("--duration", type=float, required=True, metavar="S", help="seconds to send (<= 3600)")
    load_parser.add_argument("--timeout", type=float, default=10.0, metavar="S", help="per request (default 10)")
    load_parser.add_argument("--max-in-flight", type=int, default=1000, metavar="N",
                             help="more are dropped by the generator, not sent (default 1000)")
    load_parser.add_argument("--json", action="store_true", help="machine-readable report")


def _add_chaos_parser(commands: Any) -> None:
    chaos = commands.add_parser("chaos", help="inject faults into a pool's workers (the latency monkey)")
    modes = chaos.add_subparsers(dest="mode", required=True)
    answer = argparse.ArgumentParser(add_help=False)
    answer.add_argument("--json", action="store_true", help="the broker's answer, machine-readable")
    add_mode = functools.partial(modes.add_parser, parents=[answer])
    latency = add_mode("latency", help="add MS milliseconds to PCT %% of calls")
    latency.add_argument("dependency")
    latency.add_argument("latency_ms", type=float, metavar="MS")
    latency.add_argument("--pct", type=float, default=100.0)
    errors = add_mode("errors", help="fail PCT %% of calls")
    errors.add_argument("dependency")
    errors.add_argument("pct", type=float, metavar="PCT")
    hang = add_mode("hang", help="calls block where nothing can interrupt them")
    hang.add_argument("dependency")
    hang.add_argument("--pct", type=float, default=100.0)
    kill = add_mode("kill", help="kill -9 one worker of the pool (a busy one if any)")
    kill.add_argument("dependency")
    clear = add_mode("clear", help="stop injecting faults (into every pool without DEPENDENCY)")
    clear.add_argument("dependency", nargs="?")
    keys = commands.add_parser("keys", help="CURVE key pairs for tcp:// endpoints")
    key_actions = keys.add_subparsers(dest="keys_action", required=True)
    generate = key_actions.add_parser("generate", help="write NAME.key (public) and NAME.key_secret")
    generate.add_argument("name")
    generate.add_argument("--dir", help="where (default: [security] keys_dir of the config)")


def _generate_keys(args: argparse.Namespace) -> int:
    from shared.config import key_name
    from shared.security import generate_key_pair

    try:
        name = key_name(args.name)
    except ValueError as exc:
        raise ConfigError("NAME", str(exc)) from None
    keys_dir = args.dir or load(args.config).security_setting("keys_dir")
    try:
        public, secret = generate_key_pair(keys_dir, name)
    except OSError as exc:
        print(f"seawall: {exc}", file=sys.stderr)
        return 1
    print(f"public key: {public}  (copy it into the broker's allowed_keys_dir to admit {name})")
    print(f"secret key: {secret}  (stays on this host, mode 600)")
    return 0


def _request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if args.command == "config" and args.config_action == "unset":
        return "config_unset", {"key": args.key}
    if args.command == "config":
        return "config_set", {"key": args.key, "value": parse_cli_value(args.value), "new_command_ok": args.new}
    if args.command == "breaker":
        return "breaker", {"command": args.key, "force": args.force, "new_command_ok": args.new}
    if args.command == "chaos":
        arguments = {name: value for name, value in vars(args).items()
                     if name in ("mode", "dependency", "latency_ms", "pct") and value is not None}
        return "chaos", arguments
    if args.command == "status" and args.command_text:
        return "status", {"command": args.command_text}
    return args.command, {}


def _scale(config: Config, pool: str, count: int) -> int:
    serverurl = config.supervisor_serverurl()
    try:
        result = scale(supervisor_proxy(serverurl), pool, count)
    except ScaleError as exc:
        print(f"seawall: {exc}", file=sys.stderr)
        return 1
    except (OSError, xmlrpc.client.ProtocolError) as exc:  # not there, or not supervisord (or refused us)
        print(f"seawall: cannot reach supervisord at {serverurl}: {exc}", file=sys.stderr)
        return 1
    changes = [f"started {', '.join(result.started)}"] if result.started else []
    changes += [f"stopped (drained) {', '.join(result.stopped)}"] if result.stopped else []
    print(f"pool {pool!r} runs {count} workers" + (f": {'; '.join(changes)}" if changes else " (no change)"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "load":
        from api.load import run_command  # gevent only for this subcommand

        return run_command(args.urls, args.rps, args.duration, args.timeout, args.max_in_flight, args.json)
    if args.command == "logs":
        return run_logs(args)
    try:
        if args.command == "keys":
            return _generate_keys(args)
        config = load(args.config)
        if args.command == "scale":
            return _scale(config, args.pool, args.count)
        action, arguments = _request(args)
        data = control_request(config.endpoints["control"], action, arguments, config=config)
    except (ConfigError, ControlError) as exc:
        print(f"seawall: {exc}", file=sys.stderr)
        return 1
    if action == "status":
        print(json.dumps(data, indent=2) if args.json else _format_status(data, args.command_text))
    elif action == "ping":
        print("broker is answering")
    elif action == "chaos":
        print(json.dumps(data) if args.json else _format_chaos(data))
    elif action == "config_unset":
        print(f"{data['key']} is no longer set at runtime: the file's value, or the default, is in force "
              "(fronts follow within a second)")
    else:
        print(f"{data['key']} = {data['value']!r} (fronts follow within a second)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
