"""Faults an operator injects into a pool (``seawall chaos``): the latency monkey and kills.

The broker keeps each pool's chaos settings and hands them to every worker of the pool,
now and as workers join; the workers do the injecting (workers/chaos.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared import protocol
from shared.logging import get_logger

if TYPE_CHECKING:
    from broker.server import Broker

log = get_logger("broker")


def set_chaos(broker: Broker, pool_name: str, settings: dict[str, float]) -> None:
    """Inject faults into every worker of a pool, now and as workers join; {} clears."""
    pool = broker.pools.get(pool_name)
    if pool is None:
        raise KeyError(f"no pool {pool_name!r} (pools: {', '.join(sorted(broker.pools)) or 'none'})")
    pool.chaos = {**pool.chaos, **settings} if settings else {}
    for identity in pool.workers:
        broker.outbox.to_worker(identity, protocol.chaos(pool.chaos))
    if pool.chaos:
        log.warning("chaos_set", dependency=pool_name, **pool.chaos)
    else:
        log.info("chaos_cleared", dependency=pool_name)


def kill_worker(broker: Broker, pool_name: str) -> int:
    """Tell one worker of the pool (a busy one if any) to die as kill -9 would; its pid."""
    pool = broker.pools.get(pool_name)
    if pool is None or not pool.workers:
        raise KeyError(f"pool {pool_name!r} has no workers to kill")
    # One told already and not gone yet is passed over: a second kill in a row chose it again
    alive = [worker for worker in pool.workers.values() if not worker.killed]
    if not alive:
        raise KeyError(f"every worker of pool {pool_name!r} was told to die already; none has gone yet")
    worker = max(alive, key=lambda w: (not w.draining, w.busy))
    worker.killed = True
    broker.outbox.to_worker(worker.identity, protocol.chaos({}, kill=True))
    log.warning("chaos_kill", dependency=pool_name, worker_pid=worker.pid, holding=worker.busy)
    return worker.pid
