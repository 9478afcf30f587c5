"""Workers that must register again — after a stall past their liveness, after a broker restart.

A worker registers once however many RESETs it gets (a repeated READY changes nothing),
and the broker counts the calls it still runs as busy slots until their results come.
"""

from __future__ import annotations

import json
import os
import signal

import gevent
import pytest

from api import CommandError
from chaos.scenarios import FAULTY, POOL_SIZE
from chaos_commands import FaultyCall

pytestmark = pytest.mark.timeout(90)

#: Longer than it takes to see the worker back, shorter than FaultyCall's 0.3 s timeout.
STALE_CALL_WORK_S = 0.2


def _outcomes(client, count, work_s):
    futures = [FaultyCall(call_id=i, work_s=work_s, fallback_declines=True).queue(client=client) for i in range(count)]
    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.get(timeout=5))
        except CommandError as error:
            outcomes.append(f"{error.failure.value}: {error.cause}")
    return outcomes


def _broker_events(cluster, event):
    lines = (cluster.directory / "broker.log").read_text().splitlines()
    return [json.loads(line) for line in lines if f'"{event}"' in line]


def _joins(cluster, pid):
    return [e for e in _broker_events(cluster, "worker_joined") if e["worker_pid"] == pid]


def test_a_worker_back_from_a_stall_registers_once_and_gets_only_calls_it_can_take(cluster):
    client = cluster.client()
    pid = cluster.rpc().supervisor.getProcessInfo(f"pools:pool-{FAULTY}-00")["pid"]
    cluster.wait_until(lambda: cluster.status()["pools"][FAULTY]["busy"] == 0, "the pool to be idle")
    os.kill(pid, signal.SIGSTOP)
    try:
        # One call per worker: the stopped one gets one too, which waits in its socket.
        stale = gevent.spawn(_outcomes, client, POOL_SIZE, STALE_CALL_WORK_S)
        cluster.wait_until(lambda: cluster.status()["pools"][FAULTY]["workers"] == POOL_SIZE - 1,
                           "the broker to drop the stopped worker")
        stale.join()
        joins_before = len(_joins(cluster, pid))
    finally:
        os.kill(pid, signal.SIGCONT)
    cluster.wait_until(lambda: pid in [w["pid"] for w in cluster.status()["pools"][FAULTY]["worker_list"]],
                       "the worker to register again")

    # While it still runs the stale call, the pool's three slots are not all free.
    outcomes = _outcomes(client, POOL_SIZE, 0.0)

    assert outcomes == list(range(POOL_SIZE)), outcomes
    cluster.wait_until(lambda: len(_joins(cluster, pid)) > joins_before, "the broker's log to show it joining")
    assert len(_joins(cluster, pid)) - joins_before == 1, "registered more than once"


#: How long the broker stays down: longer than a worker's liveness (3 heartbeats of 0.2 s).
BROKER_OUTAGE_S = 1.0


def test_after_a_broker_restart_every_worker_registers_once(cluster):
    supervisor = cluster.rpc().supervisor
    supervisor.stopProcess("broker")
    gevent.sleep(BROKER_OUTAGE_S)  # the outage itself: the workers find the broker silent
    supervisor.startProcess("broker")
    new_pid = supervisor.getProcessInfo("broker")["pid"]

    def joined_new_broker():
        return [e for e in _broker_events(cluster, "worker_joined") if e["pid"] == new_pid]

    cluster.wait_until(lambda: len({e["worker_pid"] for e in joined_new_broker()}) == 2 * POOL_SIZE,
                       "every worker to join the new broker")
    status = cluster.status()
    assert all(status["pools"][pool]["workers"] == POOL_SIZE for pool in status["pools"]), status["pools"]

    dropped = [e for e in _broker_events(cluster, "worker_left") if e["pid"] == new_pid]
    assert not dropped, f"workers dropped by the new broker: {[(e['worker_pid'], e['reason']) for e in dropped]}"
    assert len(joined_new_broker()) == 2 * POOL_SIZE, "a worker registered more than once"
