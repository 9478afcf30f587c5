"""The broker's messages whose size grows with what it tracks, each kept within one message.

The breaker snapshot (to fronts, every second), the metrics snapshot (to fronts and
dashboards, every half second) and the status reply (to ``seawall status``) each hold
an entry per command, and callers choose command keys: ten thousand keys of 200
characters make any of them several megabytes. A receiving socket drops the connection
of a peer that sends a frame over its size limit (``shared.transport``), and a socket
that *connects* is not made again after such a drop, so one oversize message would cut
every front off its broker. Here each message keeps the entries that matter most and
sheds the rest, and the broker says so in its log, at most once a minute per message.

What is shed costs little: a front that does not see an open breaker in the snapshot
sends the call, and the broker, whose breakers are the real ones, short-circuits it;
metrics keep the busiest commands; status keeps open breakers and the busiest commands,
and ``seawall status --command TEXT`` narrows it to the ones an operator is after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from broker.breaker import BreakerState
from broker.metrics import snapshot as metrics_snapshot
from shared import protocol
from shared.log_throttle import LogThrottle

if TYPE_CHECKING:
    from broker.breaker import Breaker
    from broker.commands import CommandRecord
    from broker.server import Broker

#: At most one ``message_trimmed`` line per message kind in this long.
TRIM_LOG_INTERVAL_S = 60.0
#: Most commands in one status reply (each costs its percentiles to build).
MAX_STATUS_COMMANDS = 1000


class TrimLog:
    """Says when a message had to shed entries, without a line every second."""

    def __init__(self, log: Any, clock: Callable[[], float]) -> None:
        self._log = log
        self._lines = LogThrottle(TRIM_LOG_INTERVAL_S, clock)  # keyed by message kind

    def trimmed(self, message: str, kept: int, total: int) -> None:
        if kept >= total or self._lines.due(message) is None:
            return
        self._log.warning("message_trimmed", message=message, entries_kept=kept, entries_left_out=total - kept,
                          max_payload_bytes=protocol.MAX_PAYLOAD_BYTES)


def published_state(breaker: Breaker) -> tuple[str, int]:
    """(state, retry_in_ms) as fronts get it; a breaker forced open never lets a trial go."""
    if breaker.settings.force == "open":
        return BreakerState.OPEN.value, protocol.MAX_TIMEOUT_MS
    # breaker_sleep_s is at most the wire's longest time; clamped all the same, as a
    # value a front refuses would cost it the whole snapshot
    return breaker.effective_state().value, min(int(breaker.retry_in_s() * 1000), protocol.MAX_TIMEOUT_MS)


def breaker_snapshot(broker: Broker, trim_log: TrimLog) -> list[bytes]:
    """Every breaker not closed, open ones first (fronts fail fast on those), and every
    runtime setting (bounded by ``MAX_OVERRIDES``; never shed, fronts need them all)."""
    entries = [(key, published_state(record.breaker)) for key, record in broker.commands.items()
               if record.breaker.effective_state() is not BreakerState.CLOSED]
    entries.sort(key=lambda entry: entry[1][0] != BreakerState.OPEN)
    frames, kept = protocol.fit(lambda count: protocol.snapshot(dict(entries[:count]), broker.overrides),
                                len(entries))
    trim_log.trimmed("breaker_snapshot", kept, len(entries))
    return frames


def metrics(broker: Broker, identity: dict[str, Any], trim_log: TrimLog) -> list[bytes]:
    """The metrics snapshot; when it would not fit, of the busiest commands that do
    (every event in the window counts, short-circuits too)."""
    full = metrics_snapshot(broker, identity)
    frames = protocol.metrics(full)
    if len(frames[-1]) <= protocol.MAX_PAYLOAD_BYTES:
        return frames
    # Busiest by every event in the window, as status ranks them: an open breaker's calls are
    # short-circuits, which its request count (health events only) leaves out.
    commands = sorted(full["commands"].items(), key=lambda item: -sum(item[1]["events"].values()))

    def build(count: int) -> list[bytes]:
        kept = dict(commands[:count])
        collapsers = {key: collapser for key, collapser in full["collapsers"].items() if key in kept}
        return protocol.metrics({**full, "commands": kept, "collapsers": collapsers})

    frames, kept = protocol.fit(build, len(commands))
    trim_log.trimmed("metrics", kept, len(commands))
    return frames


def status(broker: Broker, command_text: str = "") -> dict[str, Any]:
    """What ``seawall status`` shows: pools, workers, runtime settings, and the commands
    whose key contains ``command_text``: at most MAX_STATUS_COMMANDS, and as many as fit
    in one reply (open breakers first, then the busiest), shown in key order.

    ``commands_total`` counts the commands that matched, so the CLI can say how many
    were left out.
    """
    matching = [(key, record) for key, record in broker.commands.items() if command_text in key]
    matching.sort(key=_status_priority)
    shown = [(key, record.status()) for key, record in matching[:MAX_STATUS_COMMANDS]]
    base = {**broker.status_without_commands(), "commands_total": len(matching)}

    def build(count: int) -> list[bytes]:
        return protocol.control_reply(True, {**base, "commands": dict(sorted(shown[:count]))})

    _, kept = protocol.fit(build, len(shown))
    return {**base, "commands": dict(sorted(shown[:kept]))}


def _status_priority(item: tuple[str, CommandRecord]) -> tuple[bool, int, str]:
    key, record = item
    return record.breaker.effective_state() is BreakerState.CLOSED, -record.counts.total(), key
