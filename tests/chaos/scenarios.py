"""Chaos scenarios: one process fault each, injected into a supervised cluster under load.

A cluster (:func:`build_cluster`) runs the broker and two pools of ``POOL_SIZE`` workers
under a real supervisord: "faulty", which gets the fault, and "healthy", which must not
notice. While ``CALLERS_PER_POOL`` caller greenlets per pool keep calling, a scenario
injects its fault, clears it, waits until the cluster is back to full strength, keeps
the load on a little longer, and returns a :class:`ScenarioResult` with every call's
record. ``tests/chaos`` asserts on these results; ``bench/reliability.py`` tabulates them.

Operator actions go through the real ``seawall`` CLI (a subprocess) and supervisord's
XML-RPC; the test process is not monkey-patched, so every blocking request runs in
gevent's thread pool and the callers' clocks never stop while the scenario waits.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gevent

from api.testing import PoolProgram, SupervisedCluster
from chaos.caller_load import VALUE, CallRecord, Load, RecordingClient
from chaos_commands import FaultyCall, HealthyCall

#: Modules of commands the workers import (tests/chaos_commands.py).
TESTS_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = TESTS_DIR.parent

FAULTY, HEALTHY = "faulty", "healthy"
COMMANDS = {FAULTY: FaultyCall, HEALTHY: HealthyCall}
POOL_SIZE = 3
CALLERS_PER_POOL = 4
#: What each call does in its worker (a cooperative sleep), and each caller's pause between calls.
WORK_S = 0.02
PAUSE_S = 0.01
#: Room in each pool's queue: more than the pool's callers, so a healthy pool never rejects.
QUEUE_SIZE = 2 * CALLERS_PER_POOL
HUNG_CALL_GRACE_S = 0.5
BREAKER_SLEEP_S = 1.0

#: How far past its timeout a caller may get its answer (noisy machines).
TIMEOUT_MARGIN_S = 0.25
#: How long each fault is held while the load runs.
FAULT_S = 3.0
#: ``chaos latency``: added to every call of the faulty pool, well past its timeout.
LATENCY_MS = 1000
#: ``chaos errors``: share of the faulty pool's calls that fail.
ERROR_PCT = 50
#: ``chaos kill``: workers killed, evenly spread over FAULT_S.
KILLS = 3
#: Values each pool must answer before a fault is injected.
WARMUP_VALUES = 3
#: The cluster is recovered when every pool has all its workers, each has served a call
#: since the fault cleared, and this many of its latest answers in a row are values.
RECOVERY_STREAK = 5
#: A pool not recovered this long after its fault cleared has failed to recover.
RECOVERY_LIMIT_S = 15.0
#: Load kept on after recovery; every call started in it must succeed.
AFTER_S = 0.5
#: How long the broker may take to send the replies still owed once the load stops.
SETTLE_S = 5.0

_EXITED = re.compile(r"exited: (?P<name>\S+) \((?P<how>[^;]+);")


def cluster_settings() -> dict[str, Any]:
    pool = {"queue_size": QUEUE_SIZE, "hung_call_grace_s": HUNG_CALL_GRACE_S}
    command = {"breaker_sleep_s": BREAKER_SLEEP_S}
    return {"pools": {FAULTY: dict(pool), HEALTHY: dict(pool)},
            "commands": {FaultyCall.key: dict(command), HealthyCall.key: dict(command)}}


def build_cluster(directory: Path) -> SupervisedCluster:
    """A cluster of the two pools in ``directory``; start it with ``start_supervisord()``."""
    pools = {name: PoolProgram("chaos_commands", numprocs=POOL_SIZE) for name in COMMANDS}
    return SupervisedCluster(directory, pools, cluster_settings(), pythonpath=[TESTS_DIR])


@dataclass
class ScenarioResult:
    """What one scenario measured; ``records`` holds every call, the rest is derived from them."""

    fault: str
    action: str  # what the operator (or the OS) did, for the report
    records: list[CallRecord]
    fault_started_s: float
    cleared_s: float
    recovered_s: float | None
    recovery_error: str | None
    #: calls of the healthy pool that may fail: those overlapping this span (broker down)
    healthy_may_fail: tuple[float, float] | None
    #: wire ids the broker replied to more than once
    wire_doubled: list[int]
    #: wire ids the broker never replied to (outside the span a killed broker took with it)
    wire_unanswered: list[int]
    #: wire ids sent while a killed broker could take them with it, and never replied to
    wire_lost_with_broker: list[int]
    #: the broker's counts for FaultyCall (its rolling window) once recovered
    broker_counts: dict[str, int]
    #: "NAME: how" for every process supervisord saw exit during the scenario
    exits: list[str]
    pids_before: dict[str, list[int]]
    pids_after: dict[str, list[int]]
    broker_pids: tuple[int, int]
    #: facts of one scenario: the pids ``chaos kill`` killed, the pid stopped, ...
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered_s is None else self.recovered_s - self.cleared_s

    def answers(self, pool: str | None = None) -> Counter[str]:
        return Counter(r.kind or "none" for r in self.records if pool in (None, r.pool))

    def lost(self) -> list[CallRecord]:
        return [r for r in self.records if not r.answers]

    def doubled(self) -> list[CallRecord]:
        return [r for r in self.records if len(r.answers) > 1 or r.misrouted]

    def late(self) -> list[CallRecord]:
        """Calls answered later than their timeout plus the margin (or never)."""
        return [r for r in self.records if r.waited_s is None or r.waited_s > r.timeout_s + TIMEOUT_MARGIN_S]

    def longest_past_timeout_ms(self) -> float:
        waits = [r.waited_s - r.timeout_s for r in self.records if r.waited_s is not None]
        return max(0.0, max(waits, default=0.0)) * 1000

    def healthy_failures(self) -> list[CallRecord]:
        low_s, high_s = self.healthy_may_fail or (float("inf"), float("-inf"))
        return [r for r in self.records if r.pool == HEALTHY and r.kind != VALUE
                and not (r.finished_s is not None and r.finished_s >= low_s and r.started_s <= high_s)]

    def failures_after_recovery(self) -> list[CallRecord]:
        if self.recovered_s is None:
            return []
        return [r for r in self.records if r.started_s >= self.recovered_s and r.kind != VALUE]


class _Run:
    """One scenario in progress: the cluster, a recording client, the load, the clock marks."""

    def __init__(self, cluster: SupervisedCluster, fault: str, action: str) -> None:
        self.cluster = cluster
        self.fault = fault
        self.action = action
        self.client = RecordingClient(cluster.config)
        self.load = Load(self.client, COMMANDS, CALLERS_PER_POOL, WORK_S, PAUSE_S)
        self.supervisord_log = cluster.directory / "supervisord.log"
        self.log_offset = self.supervisord_log.stat().st_size if self.supervisord_log.exists() else 0
        self.fault_started_s = self.cleared_s = 0.0
        self.recovered_s: float | None = None
        self.recovery_error: str | None = None
        self.pools_to_recover: tuple[str, ...] = (FAULTY,)
        #: the healthy pool fails too, from the fault until recovery (the broker is down)
        self.healthy_fails_until_recovered = False
        #: wire requests sent in this span may go unanswered: a killed broker took them
        self.lost_with_broker: tuple[float, float] | None = None
        self.details: dict[str, Any] = {}
        self.served_at_clear: dict[int, int] = {}
        self.broker_counts: dict[str, int] = {}
        self.pids_before: dict[str, list[int]] = {}
        self.pids_after: dict[str, list[int]] = {}
        self.broker_pid_before = self.broker_pid()

    # -- talking to the cluster without stopping the callers --------------------------------

    def status(self) -> dict[str, Any] | None:
        return gevent.get_hub().threadpool.apply(self.cluster.status)

    def process_info(self, name: str) -> dict[str, Any]:
        return gevent.get_hub().threadpool.apply(lambda: self.cluster.rpc().supervisor.getProcessInfo(name))

    def broker_pid(self) -> int:
        return self.process_info("broker")["pid"]

    def seawall(self, *args: str) -> str:
        """Run the operator's CLI, ``seawall --config ... ARGS``, as its own process."""
        process = subprocess.Popen([sys.executable, "-m", "broker.cli", "--config", str(self.cluster.config_path),
                                    *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_DIR)
        self.cluster.wait_until(lambda: process.poll() is not None, f"seawall {' '.join(args)} to finish", 30)
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"seawall {' '.join(args)} failed: {stderr.decode(errors='replace')}")
        return stdout.decode()

    def pids(self, pool: str) -> list[int]:
        status = self.status()
        pool_status = status["pools"].get(pool) if status else None
        return sorted(w["pid"] for w in pool_status["worker_list"]) if pool_status else []

    def hold(self, duration_s: float) -> None:
        """Keep the load on for ``duration_s``: a load window, not a wait for a condition."""
        gevent.sleep(duration_s)

    # -- marks ---------------------------------------------------------------------------------

    def fault_started(self) -> None:
        self.fault_started_s = time.monotonic()

    def fault_cleared(self) -> None:
        """The fault is over now; remember how much each worker had served, to see it serve again."""
        self.cleared_s = time.monotonic()
        pools = (self.status() or {}).get("pools", {})
        for pool in self.pools_to_recover:
            for worker in pools.get(pool, {}).get("worker_list", []):
                self.served_at_clear[worker["pid"]] = worker["calls_served"]

    # -- recovery --------------------------------------------------------------------------------

    def wait_until_recovered(self) -> None:
        try:
            self.cluster.wait_until(self._recovered, f"pools {self.pools_to_recover} to recover", RECOVERY_LIMIT_S)
        except TimeoutError as exc:
            self.recovery_error = str(exc)
            return
        self.recovered_s = time.monotonic()

    def _recovered(self) -> bool:
        status = self.status()
        now_s = time.monotonic()
        return status is not None and all(
            self._pool_at_full_strength(status["pools"].get(pool), now_s)
            and self.load.streak(pool, self.cleared_s) >= RECOVERY_STREAK
            for pool in self.pools_to_recover)

    def _pool_at_full_strength(self, pool: dict[str, Any] | None, now_s: float) -> bool:
        """Every worker registered, and each has served a call since the fault cleared."""
        if not pool or pool["workers"] != POOL_SIZE or pool["draining"]:
            return False
        for worker in pool["worker_list"]:
            joined_since_clear = now_s - worker["uptime_s"] > self.cleared_s
            served_before = 0 if joined_since_clear else self.served_at_clear.get(worker["pid"], 0)
            if worker["calls_served"] <= served_before:
                return False
        return True

    # -- the whole scenario ------------------------------------------------------------------------

    def run(self, inject: Callable[[_Run], None]) -> ScenarioResult:
        self.load.start()
        try:
            self.cluster.wait_until(lambda: all(self.load.values(p) >= WARMUP_VALUES for p in COMMANDS),
                                    "both pools to answer", RECOVERY_LIMIT_S)
            self.pids_before = {pool: self.pids(pool) for pool in COMMANDS}
            inject(self)
            self.wait_until_recovered()
            self.pids_after = {pool: self.pids(pool) for pool in COMMANDS}
            status = self.status()
            self.broker_counts = status["commands"].get(FaultyCall.key, {}).get("events", {}) if status else {}
            self.hold(AFTER_S)
            self.load.stop(timeout_s=max(c.timeout_s for c in COMMANDS.values()) + TIMEOUT_MARGIN_S + 1.0)
            self._settle()
        finally:
            self.load.stop(timeout_s=0)
            self.client.close()
        return self._result()

    def _owed(self) -> list[int]:
        """Wire requests the broker has not replied to, but for those a killed broker took."""
        low_s, high_s = self.lost_with_broker or (float("inf"), float("-inf"))
        return [i for i in self.client.unanswered() if not low_s <= self.client.sent_s[i] <= high_s]

    def _settle(self) -> None:
        """Wait for the replies the broker still owes (to calls their callers gave up on)."""
        try:
            self.cluster.wait_until(lambda: not self._owed(), "the broker to answer every request", SETTLE_S)
        except TimeoutError:
            pass  # reported as wire_unanswered

    def _result(self) -> ScenarioResult:
        owed = self._owed()
        healthy_may_fail = (self.fault_started_s, self.recovered_s or float("inf")) \
            if self.healthy_fails_until_recovered else None
        return ScenarioResult(
            fault=self.fault, action=self.action, records=list(self.load.records.values()),
            fault_started_s=self.fault_started_s, cleared_s=self.cleared_s, recovered_s=self.recovered_s,
            recovery_error=self.recovery_error, healthy_may_fail=healthy_may_fail,
            wire_doubled=self.client.doubled(), wire_unanswered=owed,
            wire_lost_with_broker=[i for i in self.client.unanswered() if i not in owed],
            broker_counts=self.broker_counts, exits=self._exits(), pids_before=self.pids_before,
            pids_after=self.pids_after, broker_pids=(self.broker_pid_before, self.broker_pid()),
            details=self.details,
        )

    def _exits(self) -> list[str]:
        with self.supervisord_log.open(errors="replace") as log_file:
            log_file.seek(self.log_offset)
            return [f"{m['name']}: {m['how']}" for m in _EXITED.finditer(log_file.read())]


# -- the faults ------------------------------------------------------------------------------------


def _chaos_then_clear(*chaos: str) -> Callable[[_Run], None]:
    """``seawall chaos MODE faulty ...`` for FAULT_S, then ``seawall chaos clear faulty``."""
    def inject(run: _Run) -> None:
        run.seawall("chaos", *chaos)
        run.fault_started()
        run.hold(FAULT_S)
        run.seawall("chaos", "clear", FAULTY)
        run.fault_cleared()

    return inject


def _kill(run: _Run) -> None:
    """kill -9 a busy worker every FAULT_S / KILLS; the fault is over with the last kill."""
    killed = run.details["killed_pids"] = [_killed_pid(run)]
    run.fault_started()
    for _ in range(KILLS - 1):
        run.hold(FAULT_S / KILLS)
        killed.append(_killed_pid(run))
    run.fault_cleared()


def _killed_pid(run: _Run) -> int:
    return json.loads(run.seawall("chaos", "kill", FAULTY, "--json"))["killed_pid"]


def _broker(run: _Run) -> None:
    """SIGKILL the broker; supervisord starts a new one at once, so the fault clears as it starts."""
    run.pools_to_recover = (FAULTY, HEALTHY)
    run.healthy_fails_until_recovered = True
    max_timeout_s = max(c.timeout_s for c in COMMANDS.values())
    run.fault_started()
    os.kill(run.broker_pid_before, signal.SIGKILL)
    run.fault_cleared()
    run.cluster.wait_until(lambda: run.status() is not None, "the new broker to answer", RECOVERY_LIMIT_S)
    # Requests the dead broker had read and not answered are gone with it.
    run.lost_with_broker = (run.fault_started_s - max_timeout_s, time.monotonic())
    run.details["broker_answered_again_s"] = time.monotonic() - run.fault_started_s


def _stop(run: _Run) -> None:
    """SIGSTOP one worker for FAULT_S, then SIGCONT it."""
    pid = run.details["stopped_pid"] = run.process_info(f"pools:pool-{FAULTY}-00")["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        run.fault_started()
        run.hold(FAULT_S)
    finally:
        os.kill(pid, signal.SIGCONT)
    run.fault_cleared()


def _scenario(fault: str, action: str, inject: Callable[[_Run], None]) -> Callable[[SupervisedCluster], ScenarioResult]:
    def scenario(cluster: SupervisedCluster) -> ScenarioResult:
        return _Run(cluster, fault, action).run(inject)

    scenario.__name__ = fault
    scenario.__doc__ = f"{fault}: {action}"
    return scenario


latency = _scenario("latency", f"seawall chaos latency {FAULTY} {LATENCY_MS}",
                    _chaos_then_clear("latency", FAULTY, str(LATENCY_MS)))
errors = _scenario("errors", f"seawall chaos errors {FAULTY} {ERROR_PCT}",
                   _chaos_then_clear("errors", FAULTY, str(ERROR_PCT)))
hang = _scenario("hang", f"seawall chaos hang {FAULTY}", _chaos_then_clear("hang", FAULTY))
kill = _scenario("kill", f"seawall chaos kill {FAULTY}, {KILLS} times", _kill)
broker = _scenario("broker", "SIGKILL the broker (supervisord restarts it)", _broker)
stop = _scenario("stop", f"SIGSTOP one worker of {FAULTY} for {FAULT_S:g} s, then SIGCONT", _stop)

#: Every scenario, in the order the report lists them.
SCENARIOS: dict[str, Callable[[SupervisedCluster], ScenarioResult]] = {
    s.__name__: s for s in (latency, errors, hang, kill, broker, stop)}
