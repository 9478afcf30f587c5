"""Workers joining, beating and leaving: the broker's side of a worker's life.

Apart from broker/server.py, which routes calls, because none of it is on a call's path:
it runs on a READY, a STATS or a signal from a worker, and on the liveness check every
half heartbeat. A mixin rather than an object of its own: it reads and changes the
broker's workers, pools and calls as the routing does, and answers calls as it does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from broker.beats import Beats, lost
from broker.pool import MAX_POOLS, Pool, WorkerRecord
from shared import protocol
from shared.events import Event
from shared.logging import get_logger

if TYPE_CHECKING:
    import zmq

    from broker.calls import Call, CallTable
    from broker.commands import CommandRegistry
    from broker.outbox import Outbox
    from broker.ready_sockets import ReadySockets
    from shared.config import Config
    from shared.log_throttle import LogThrottle

log = get_logger("broker")

#: A worker silent for this many heartbeat intervals is gone.
LIVENESS_INTERVALS = 3


class WorkerMembership:
    """Mixed into :class:`broker.server.Broker`; what it uses of the broker is declared here."""

    if TYPE_CHECKING:
        workers: dict[bytes, WorkerRecord]
        pools: dict[str, Pool]
        calls: CallTable
        commands: CommandRegistry
        outbox: Outbox
        beats: Beats
        config: Config
        heartbeat_s: float
        dropped_lines: LogThrottle
        back: zmq.Socket
        _ready_sockets: ReadySockets
        _next_heartbeat_s: float
        _next_liveness_check_s: float

        def _answer(self, call: Call, outcome: Event, execution_ms: float, payload: bytes) -> None: ...
        def _free_slot(self, worker: WorkerRecord, now_s: float) -> None: ...
        def _dispatch_queued(self, pool: Pool, now_s: float) -> None: ...
        def _pool(self, name: str) -> Pool: ...
        def _pool_has_workers(self, name: str) -> bool: ...
        def _receive(self, sock: zmq.Socket, handler: Callable[[list[bytes]], None]) -> bool: ...
        def _on_back(self, frames: list[bytes]) -> None: ...

    def _register(self, identity: bytes, ready: protocol.Ready, now_s: float) -> None:
        known = self.workers.get(identity)
        if known is not None:
            if (known.pid, known.pool, known.slots) == (ready.pid, ready.dependency, ready.slots):
                # A repeated READY (one per RESET it got); it may name calls it ran meanwhile.
                known.last_seen_s = now_s
                pool = self.pools[known.pool]
                for call_id in set(ready.running) - known.held - known.ghosts:
                    if pool.occupy_free_slot(known):
                        known.ghosts.add(call_id)
                        known.ghosts_beat = self.beats.current
                if pool.chaos:  # a worker clears its chaos when it registers (workers/worker.py)
                    self.outbox.to_worker(identity, protocol.chaos(pool.chaos))
                return
            self._remove_worker(identity, "registered again as another worker")
        if self._refused_as_one_pool_too_many(ready):
            return
        self.commands.learn_class_settings(ready.commands, ready.dependency, self._pool_has_workers)
        worker = WorkerRecord(identity, ready.dependency, ready.slots, ready.pid,
                              frozenset(ready.commands), now_s, now_s, ghosts=set(ready.running),
                              ghosts_beat=self.beats.current)
        self.workers[identity] = worker
        pool = self._pool(ready.dependency)
        pool.add_worker(worker)
        log.info("worker_joined", dependency=pool.name, worker_pid=ready.pid, slots=ready.slots,
                 pool_workers=len(pool.workers), pool_slots=pool.slots)
        if pool.chaos:
            self.outbox.to_worker(identity, protocol.chaos(pool.chaos))
        self._dispatch_queued(pool, now_s)

    def _refused_as_one_pool_too_many(self, ready: protocol.Ready) -> bool:
        """Whether ``ready`` names a new pool past MAX_POOLS (a configured one is never
        refused); then it is logged, at most once an interval with the count since."""
        if len(self.pools) < MAX_POOLS or ready.dependency in self.pools or ready.dependency in self.config.pools:
            return False
        held_back = self.dropped_lines.due("pools_full")
        if held_back is not None:
            log.warning("worker_refused", dependency=ready.dependency, worker_pid=ready.pid,
                        reason=f"the broker holds {MAX_POOLS} pools already; a pool is made by its first worker "
                               f"and kept, so check the --dependency of the workers started",
                        refused_since_last_line=held_back)
        return True

    def _on_stats(self, worker: WorkerRecord, stats: protocol.Stats, now_s: float) -> None:
        """The worker's heartbeat: its size, and the calls it holds, which tell what was
        lost on the way to it (broker/beats.py)."""
        worker.rss_mb = stats.rss_mb
        if not self.beats.sent_by_me(stats.beat):
            return
        holding = frozenset(stats.holding)
        calls = self.calls
        lost_calls = lost(((call_id, call.beat if (call := calls.get(call_id)) is not None else 0)
                           for call_id in worker.held), stats.beat, holding)
        lost_ghosts = [] if stats.beat <= worker.ghosts_beat else list(worker.ghosts - holding)
        if not (lost_calls or lost_ghosts):
            return
        unanswered = sum(self._lose(call_id, worker, "lost the call on the way (a dropped connection): it never got "
                                                     "it, or its result never came") for call_id in lost_calls)
        worker.ghosts.difference_update(lost_ghosts)
        pool = self.pools[worker.pool]
        for _ in range(len(lost_calls) + len(lost_ghosts) - 1):
            pool.release_slot(worker)
        # The last slot through _free_slot: queued calls go out, and a draining worker now
        # idle is logged once, not once per slot.
        self._free_slot(worker, now_s)
        log.warning("calls_lost_in_transit", dependency=worker.pool, worker_pid=worker.pid,
                    calls_lost=len(lost_calls) + len(lost_ghosts), calls_answered=unanswered)

    def _lose(self, call_id: int, worker: WorkerRecord, what_happened: str) -> bool:
        """Forget a call ``worker`` will not answer, and answer it WORKER_LOST if no answer
        has gone yet; True if one went now."""
        worker.held.discard(call_id)
        call = self.calls.pop(call_id)
        if call is None:
            return False
        call.record.finished()
        self.pools[worker.pool].call_finished(completed=False)
        if call.answered:
            return False
        self._answer(call, Event.WORKER_LOST, 0.0, protocol.encode_error(
            "WorkerLost", f"worker pid {worker.pid} of pool {worker.pool!r} {what_happened}"))
        return True

    def _on_worker_signal(self, worker: WorkerRecord, kind: protocol.Kind, now_s: float) -> None:
        if kind is protocol.Kind.HEARTBEAT:
            return
        if kind is protocol.Kind.DRAINING:
            self.pools[worker.pool].drain_worker(worker)
            self.outbox.to_worker(worker.identity, protocol.signal(protocol.Kind.DRAIN_ACK))
            log.info("worker_draining", dependency=worker.pool, worker_pid=worker.pid, holding=worker.busy)
        elif kind is protocol.Kind.GOODBYE:
            self._remove_worker(worker.identity, "said goodbye")
        else:
            protocol.log_unexpected(log, self.dropped_lines, "back", kind.name, worker_pid=worker.pid)

    def _remove_worker(self, identity: bytes, reason: str) -> None:
        worker = self.workers.pop(identity)
        self.outbox.forget_worker(identity)
        pool = self.pools[worker.pool]
        pool.remove_worker(identity)
        answered = sum(self._lose(call_id, worker, f"{reason} while running the call")
                       for call_id in list(worker.held))
        gone = reason == "said goodbye"
        (log.info if gone else log.warning)("worker_left" if gone else "worker_lost", dependency=worker.pool,
                                            worker_pid=worker.pid, reason=reason, calls_lost=answered,
                                            pool_workers=len(pool.workers), pool_slots=pool.slots)

    def _check_liveness(self, now_s: float) -> None:
        """Remove workers silent for LIVENESS_INTERVALS beats; beat to the others.

        Checked every half interval, so a dead worker is found within
        LIVENESS_INTERVALS + 1/2 intervals of its last sign of life.
        """
        self._next_liveness_check_s = now_s + self.heartbeat_s / 2
        beat = now_s >= self._next_heartbeat_s
        if beat:
            self._next_heartbeat_s = now_s + self.heartbeat_s
            beat_frames = protocol.beat(self.beats.advance())
        silent_after_s = now_s - LIVENESS_INTERVALS * self.heartbeat_s
        if any(worker.last_seen_s < silent_after_s for worker in self.workers.values()):
            # The loop may have been held up (a flood on another socket): read what the
            # workers sent meanwhile before taking its own lateness for their silence.
            if self._receive(self.back, self._on_back):
                self._ready_sockets.hold(self.back)
        for identity, worker in list(self.workers.items()):
            if worker.last_seen_s < silent_after_s:
                self._remove_worker(identity, f"was silent for {LIVENESS_INTERVALS} heartbeats")
            elif beat:
                self.outbox.to_worker(identity, beat_frames)
