"""What the broker knows per command key: its breaker, rolling event counts, latencies.

Settings resolve as everywhere else: ``[commands.KEY]`` (and runtime overrides), then
the attributes the command's class sets (workers report them when they register), then
``[defaults]``, then the built-in default. Keys come from callers, so the store is
bounded and drops keys idle for twice the percentile window (never an open breaker).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from broker.breaker import Breaker, BreakerSettings, BreakerState, Transition
from shared.config import COMMAND_SETTINGS, Config
from shared.events import Event
from shared.logging import get_logger
from shared.rolling import KeyedStore, RollingCounts, RollingMax, RollingPercentiles

log = get_logger("broker.commands")

#: Most command keys tracked at once.
MAX_COMMAND_KEYS = 10_000
#: Most keys whose class settings fronts declared (semaphore commands); apart from the
#: workers' MAX_COMMAND_KEYS, so that fronts cannot fill the table a new pool needs.
MAX_FRONT_DECLARED_KEYS = 2_000
#: Most ``bad_class_setting_ignored`` lines one declaration logs (a front sends its own
#: every few seconds; one of made-up names logged 60,000 lines).
MAX_BAD_SETTING_LINES = 5
#: The "pool" of settings fronts declared.
FRONTS = ""
#: A command with no call for this long leaves status, the dashboard, the stream and
#: /metrics (an open breaker never does). Long enough that a quiet command stays in view,
#: as it does in Hystrix; bounded, so keys a caller makes up do not stay for good.
IDLE_COMMAND_S = 3600.0
#: Every event at zero, copied for each new record (iterating an Enum is slow).
_NO_EVENTS: dict[Event, int] = dict.fromkeys(Event, 0)
#: Latency percentiles cover this long (Hystrix: 60 s in 6 buckets).
PERCENTILE_WINDOW_S = 60.0
PERCENTILE_BUCKETS = 6
#: Percentiles shown in status.
STATUS_PERCENTILES = (50.0, 99.0)

_SETTING_FOR_FIELD = {
    "volume_threshold": "breaker_volume_threshold",
    "error_pct": "breaker_error_pct",
    "sleep_s": "breaker_sleep_s",
    "force": "breaker_force",
    "slow_call_ms": "breaker_slow_call_ms",
    "slow_call_pct": "breaker_slow_call_pct",
    "window_s": "window_s",
    "window_buckets": "window_buckets",
}


#: Outcomes of an execution, whose latency the percentiles count (not rejections,
#: short-circuits, fallbacks or cache hits).
_EXECUTED = frozenset({Event.SUCCESS, Event.FAILURE, Event.TIMEOUT, Event.BAD_REQUEST, Event.WORKER_LOST})
#: What a collapser counts in its window: batches sent, calls in them.
_BATCH_COUNTS = ("batches", "requests")


@dataclass
class CommandRecord:
    key: str
    breaker: Breaker
    counts: RollingCounts[Event]
    latency: RollingPercentiles
    clock: Callable[[], float]
    #: received -> answered, queueing included (``latency`` is the worker's run() alone)
    total_latency: RollingPercentiles
    #: calls of this command running in workers now, and the most at once in the window
    running: int = 0
    max_running: RollingMax = field(kw_only=True)
    #: the pool its calls go to; "" while none has (semaphore commands never do)
    pool: str = ""
    #: sizes of the batches this command's calls were collapsed into (collapsers only)
    batch_sizes: RollingPercentiles | None = None
    batch_counts: RollingCounts[str] | None = None
    #: every event since the broker started (``counts`` is the rolling window)
    totals: dict[Event, int] = field(default_factory=lambda: _NO_EVENTS.copy())
    #: the collapsing settings callers last asked for
    collapse_window_ms: float = 0.0
    collapse_max_batch: int = 0

    def record_batch(self, size: int) -> None:
        if self.batch_sizes is None:
            self.batch_sizes = RollingPercentiles(PERCENTILE_WINDOW_S, PERCENTILE_BUCKETS, self.clock)
            settings = self.breaker.settings
            self.batch_counts = RollingCounts(_BATCH_COUNTS, settings.window_s, settings.window_buckets, self.clock)
        self.batch_sizes.add(size)
        self.batch_counts.add("batches")  # type: ignore[union-attr]  # made with batch_sizes, never without
        self.batch_counts.add("requests", size)  # type: ignore[union-attr]

    def record_collapsed(self) -> None:
        """One call of this command went in a batch (Hystrix's COLLAPSED)."""
        self.counts.add(Event.COLLAPSED)
        self.totals[Event.COLLAPSED] += 1

    def started(self) -> None:
        """A call of this command went to a worker."""
        self.running += 1
        self.max_running.add(self.running)

    def finished(self) -> None:
        """A call of this command left its worker (answered, or the worker is gone)."""
        self.running -= 1

    def record(self, event: Event, latency_ms: float, trial: int = 0, total_ms: float | None = None,
               ran: bool = True) -> None:
        """One outcome; ``latency_ms`` is the execution's, and a call that never ran (its
        deadline passed in the queue) counts in the total latency only."""
        self.counts.add(event)
        self.totals[event] += 1
        if event in _EXECUTED:
            if ran:
                self.latency.add(latency_ms)
            self.total_latency.add(latency_ms if total_ms is None else total_ms)
        self.breaker.record(event, latency_ms, trial)

    def status(self) -> dict[str, Any]:
        volume, error_pct, slow_pct = self.breaker.health()
        percentiles = self.latency.percentiles(STATUS_PERCENTILES)
        return {
            "breaker": self.breaker.effective_state().value,
            "force": self.breaker.settings.force,
            "error_pct": round(error_pct, 1),
            "slow_pct": round(slow_pct, 1),
            "volume": volume,
            "retry_in_s": round(self.breaker.retry_in_s(), 3),
            "p50_ms": percentiles[50.0],
            "p99_ms": percentiles[99.0],
            "events": {event.value: count for event, count in sorted(self.counts.totals().items())},
            **({"collapser": self._collapser_status(self.batch_sizes)} if self.batch_sizes is not None else {}),
        }

    def _collapser_status(self, batch_sizes: RollingPercentiles) -> dict[str, Any]:
        sizes = batch_sizes.percentiles((50.0, 99.0))
        return {"batches": batch_sizes.count, "mean_batch_size": round(batch_sizes.mean_ms(), 2),
                "batch_size_p50": sizes[50.0], "batch_size_p99": sizes[99.0]}


def _kept(record: CommandRecord) -> bool:
    """A record that must outlive any number of new keys and any idle time: its breaker
    is not closed (forgetting it would close it), or a call of it is running."""
    return record.breaker.state is not BreakerState.CLOSED or record.running > 0


class CommandRegistry:
    def __init__(self, config: Config, on_transition: Transition, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._on_transition = on_transition
        #: command key -> settings its class sets, as workers reported them
        self.class_settings: dict[str, dict[str, Any]] = {}
        #: command key -> the pool whose workers' class settings count for it (FRONTS: the
        #: fronts that run it, a semaphore command)
        self._settings_pool: dict[str, str] = {}
        self._front_declared_keys = 0
        self._records: KeyedStore[str, CommandRecord] = KeyedStore(
            self._new_record, MAX_COMMAND_KEYS, idle_s=IDLE_COMMAND_S, clock=clock, pinned=_kept)

    def get(self, key: str) -> CommandRecord:
        return self._records.get(key)

    def items(self) -> list[tuple[str, CommandRecord]]:
        return self._records.items()

    def known_keys(self) -> set[str]:
        """Every command key the broker has heard of: called lately, run by a worker that
        registered, or named in the config file (a key whose record went idle is known
        still by the workers that run it)."""
        return {key for key, _ in self._records.items()} | self.class_settings.keys() | self.config.commands.keys()

    def drop_idle(self) -> list[str]:
        return self._records.drop_idle()

    def learn_class_settings(self, commands: dict[str, dict[str, Any]], pool: str = "",
                             pool_has_workers: Callable[[str], bool] = lambda name: False) -> None:
        """Take the class attributes a worker of ``pool`` reported; bad ones are logged and ignored.

        A command class names one pool, so a key's class settings come from the pool that
        declared it first, for as long as that pool has workers: a READY from another pool
        naming the same key (a deployment mixing versions, or a peer making things up)
        changes nothing, and says so in one line. At most MAX_COMMAND_KEYS keys are kept.
        """
        conflicting: list[str] = []
        over_limit = 0
        bad: list[tuple[str, str, str]] = []
        for key, settings in list(commands.items())[:MAX_COMMAND_KEYS]:
            owner = self._settings_pool.get(key)
            if owner is not None and owner != pool and pool_has_workers(owner):
                conflicting.append(key)
                continue
            if owner is None and self._full(pool):
                over_limit += 1
                continue
            self._own(key, owner, pool)
            checked = {}
            for name, value in settings.items():
                try:
                    checked[name] = COMMAND_SETTINGS[name].check(value)
                except (KeyError, ValueError) as exc:
                    bad.append((key, name, str(exc)))
            if self.class_settings.get(key) != checked:
                self.class_settings[key] = checked
                record = self._records.peek(key)
                if record is not None:
                    self._apply_settings(record)
        for index, (key, name, error) in enumerate(bad[:MAX_BAD_SETTING_LINES]):
            more = len(bad) - MAX_BAD_SETTING_LINES if index == MAX_BAD_SETTING_LINES - 1 else 0
            log.warning("bad_class_setting_ignored", command=key, setting=name, error=error,
                        **({"more_not_logged": more} if more > 0 else {}))
        if conflicting or over_limit:
            log.warning("class_settings_refused", pool=pool or "(fronts)", conflicting=len(conflicting),
                        commands=conflicting[:10], owners=sorted({self._settings_pool[key] for key in conflicting})[:10],
                        over_key_limit=over_limit,
                        max_command_keys=MAX_FRONT_DECLARED_KEYS if pool == FRONTS else MAX_COMMAND_KEYS)

    def learn_front_declared(self, commands: dict[str, dict[str, Any]]) -> None:
        """Take the class attributes a front declared for the semaphore commands it runs
        (protocol DECLARE). Never for a key a pool's workers declared: a front, buggy or
        not, cannot set a pool command's breaker (``breaker_force``, its thresholds)."""
        self.learn_class_settings(commands, FRONTS, pool_has_workers=lambda owner: owner != FRONTS)

    def _full(self, pool: str) -> bool:
        """No room for one more key declared by ``pool`` (fronts and workers apart)."""
        if pool == FRONTS:
            return self._front_declared_keys >= MAX_FRONT_DECLARED_KEYS
        return len(self._settings_pool) - self._front_declared_keys >= MAX_COMMAND_KEYS

    def _own(self, key: str, owner: str | None, pool: str) -> None:
        self._front_declared_keys += (pool == FRONTS) - (owner == FRONTS)
        self._settings_pool[key] = pool

    def reconfigure(self, config: Config) -> None:
        self.config = config
        for key, record in self._records.items():
            self._apply_settings(record)

    def _apply_settings(self, record: CommandRecord) -> None:
        """New settings for a known command; a new window size restarts its counts."""
        old_window = (record.breaker.settings.window_s, record.breaker.settings.window_buckets)
        settings = self.breaker_settings(record.key)
        record.breaker.update_settings(settings)
        if (settings.window_s, settings.window_buckets) != old_window:
            record.counts = RollingCounts(list(Event), settings.window_s, settings.window_buckets, self.clock)
            record.max_running = RollingMax(settings.window_s, settings.window_buckets, self.clock)
            if record.batch_counts is not None:
                record.batch_counts = RollingCounts(_BATCH_COUNTS, settings.window_s, settings.window_buckets,
                                                    self.clock)

    def breaker_settings(self, key: str) -> BreakerSettings:
        class_settings = self.class_settings.get(key, {})
        return BreakerSettings(**{
            field: self.config.command_setting(key, name, class_settings.get(name))
            for field, name in _SETTING_FOR_FIELD.items()
        })

    def _new_record(self, key: str) -> CommandRecord:
        settings = self.breaker_settings(key)
        return CommandRecord(
            key,
            Breaker(key, settings, self.clock, self._on_transition),
            RollingCounts(list(Event), settings.window_s, settings.window_buckets, self.clock),
            RollingPercentiles(PERCENTILE_WINDOW_S, PERCENTILE_BUCKETS, self.clock),
            self.clock,
            RollingPercentiles(PERCENTILE_WINDOW_S, PERCENTILE_BUCKETS, self.clock),
            max_running=RollingMax(settings.window_s, settings.window_buckets, self.clock),
        )
