"""The broker: one poll loop that routes calls from callers to worker pools and back.

Plain pyzmq, no gevent, no service code. It owns every pool's slots and queue and every
call's deadline; it reads only the small header of a call and passes the arguments and
results through as bytes. Every message is validated where it enters; a malformed one is
logged and dropped, and the loop goes on.
"""

from __future__ import annotations

import signal
import time
from types import FrameType
from typing import Any, Callable, cast

import zmq

from broker import bounded
from broker.breaker import Admission, Breaker, BreakerState
from broker.batching import Batcher, OpenBatch, calls_in_batch, request_batch_outcomes, unique_payloads
from broker.beats import Beats
from broker.calls import Call, CallTable
from broker.commands import CommandRegistry
from broker.control import handle_control
from broker.bounded import TrimLog, published_state
from broker.membership import WorkerMembership
from broker.metrics import METRICS_INTERVAL_S, broker_identity
from broker.outbox import Outbox
from broker.pool import Pool, WorkerRecord
from broker.ready_sockets import ReadySockets
from broker.reported import ReportedOutcomes
from broker.zap import CurveGate
from broker.call_log import CallLog
from shared import protocol
from shared.config import MAX_OVERRIDES, Config, ConfigError, check_override, ensure_run_dir, with_overrides
from shared.events import Event
from shared.log_throttle import LogThrottle
from shared.logging import get_logger
from shared.security import needs_curve, secure_server
from shared.transport import bind, context, holds_message, make_socket, recv_frames, send_frames

log = get_logger("broker")

#: Messages read from one socket before the loop looks at the others.
RECEIVE_BATCH = 500
#: Longest one socket holds the loop in a turn: a flood of costly messages (reports of
#: thousands of outcomes) on one socket must not starve the others' calls and heartbeats.
RECEIVE_BUDGET_S = 0.05
#: The budget is checked every this many messages (a clock read costs as much as routing).
BUDGET_CHECK_EVERY = 16
#: How often every non-closed breaker and runtime setting is published to fronts.
SNAPSHOT_INTERVAL_S = 1.0
_NOBLOCK = int(zmq.NOBLOCK)  # an int, not pyzmq's IntFlag: no enum arithmetic per message
#: How often fronts hear the broker is alive (they call it down after a few silent beats).
FRONT_BEAT_S = 0.25
#: Longest the loop counts reported outcomes in one turn (see broker/reported.py).
REPORT_BUDGET_S = 0.02


#: What a worker sends besides READY: from a peer not registered, these ask it to register.
_WORKER_KINDS = frozenset({protocol.Result, protocol.Results, protocol.Stats, protocol.Signal})


class Broker(WorkerMembership):
    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.file_config = config
        self.config = config
        self.clock = clock
        self.pools: dict[str, Pool] = {}
        # Ids unique across broker restarts, so a result from before a restart is never
        # taken for a new call's.
        self.calls = CallTable(first_id=time.time_ns())
        self.batcher = Batcher(clock)
        self.workers: dict[bytes, WorkerRecord] = {}
        self.commands = CommandRegistry(config, self._on_breaker_transition, clock)
        #: settings changed at runtime (``seawall config set``), dotted key -> value
        self.overrides: dict[str, Any] = {}
        self.requests_received = 0
        self.started_s = clock()
        self.heartbeat_s: float = config.broker_setting("heartbeat_s")
        self._running = False
        self._next_heartbeat_s = 0.0
        self._next_liveness_check_s = 0.0
        self._next_snapshot_s = 0.0
        self._next_front_beat_s = 0.0
        self._next_metrics_s = 0.0
        self._identity = broker_identity()
        self.call_log = CallLog(log, config.logging_setting("success_sample_rate"), clock)
        self._trim_log = TrimLog(log, clock)
        #: ``malformed_message_dropped`` lines per socket and error, ``unexpected_...`` per socket and kind
        self.dropped_lines = LogThrottle(protocol.DROPPED_LOG_INTERVAL_S, clock)
        #: outcomes fronts reported, counted REPORT_BUDGET_S a turn
        self.reported = ReportedOutcomes(self.commands, self.call_log, clock, log)
        #: numbered beats to workers, to find calls lost on the way to them (broker/beats.py)
        self.beats = Beats()

    # -- life cycle ----------------------------------------------------------------------

    def run(self) -> None:
        """Bind, serve until SIGTERM/SIGINT or :meth:`stop`, close."""
        ensure_run_dir(self.config)
        self.gate = None
        if any(needs_curve(endpoint) for endpoint in self.config.endpoints.values()):
            self.gate = CurveGate(context(), self.config.security_setting("allowed_keys_dir"), log, self.clock)
            self.gate.start()
        self.front = make_socket(zmq.ROUTER)
        # Workers choose their routing ids and keep them across new sockets: no handover,
        # so what the old connection delivered still comes under the worker's id, and
        # the new connection is taken once the old one has closed (ZeroMQ retries it).
        self.back = make_socket(zmq.ROUTER)
        self.control = make_socket(zmq.ROUTER)
        self.events = make_socket(zmq.PUB)
        for name, sock in (("front", self.front), ("back", self.back),
                           ("control", self.control), ("events", self.events)):
            secure_server(sock, self.config, self.config.endpoints[name])
            bind(sock, self.config.endpoints[name])
        self.outbox = Outbox(self.front, self.back)
        signal.signal(signal.SIGTERM, self._stop_on_signal)
        signal.signal(signal.SIGINT, self._stop_on_signal)
        log.info("broker_started", endpoints=self.config.endpoints, heartbeat_s=self.heartbeat_s)
        try:
            self._loop()
        finally:
            if self.gate is not None:
                self.gate.close()
            for sock in (self.front, self.back, self.control, self.events):
                sock.close(linger=0)
            log.info("broker_stopped", calls_in_flight=len(self.calls))

    def stop(self) -> None:
        self._running = False

    def _stop_on_signal(self, signal_number: int, frame: FrameType | None) -> None:
        self.stop()

    def _loop(self) -> None:
        #: each socket's reader; True if it left messages for the next turn
        drains: dict[zmq.Socket, Callable[[zmq.Socket], bool | None]] = {
            self.back: lambda sock: self._receive(sock, self._on_back),
            self.front: lambda sock: self._receive(sock, self._on_front),
            self.control: lambda sock: self._receive(sock, self._on_control),
        }
        gate = self.gate
        if gate is not None and gate.socket is not None:  # started in run()
            drains[gate.socket] = lambda sock: self._drain_with(sock, gate.handle)
            for name, sock in (("front", self.front), ("back", self.back), ("control", self.control),
                               ("events", self.events)):
                if needs_curve(self.config.endpoints[name]):
                    drains[gate.watch(sock, name)] = (  # mypy infers no lambda with a default (name=name)
                        lambda monitor, name=name: gate.handle_monitor(monitor, name))  # type: ignore[misc]
        ready_sockets = self._ready_sockets = ReadySockets(list(drains))
        self._running = True
        try:
            while self._running:
                for sock in ready_sockets.wait(self._poll_timeout_ms()):
                    if drains[sock](sock):
                        ready_sockets.hold(sock)
                    self.outbox.flush()
                if self.reported.backlog.pending:
                    self.reported.count(REPORT_BUDGET_S)
                for open_batch in self.batcher.due():
                    self._submit_batch(open_batch)
                now_s = self.clock()
                self._expire(now_s)
                if now_s >= self._next_liveness_check_s:
                    self._check_liveness(now_s)
                if now_s >= self._next_snapshot_s:
                    self._publish_snapshot(now_s)
                if now_s >= self._next_front_beat_s:
                    self._next_front_beat_s = now_s + FRONT_BEAT_S
                    send_frames(self.events, protocol.STATE_HEARTBEAT)
                if now_s >= self._next_metrics_s:
                    self._next_metrics_s = now_s + METRICS_INTERVAL_S
                    send_frames(self.events, bounded.metrics(self, self._identity, self._trim_log))
                    self.call_log.rejections.flush()
                self.outbox.flush()
                ready_sockets.ask(self.outbox.take_sent_on())
        finally:
            ready_sockets.close()
        self.outbox.flush()  # stopped mid-turn (a signal): what was answered still goes out

    @staticmethod
    def _drain_with(sock: zmq.Socket, handle: Callable[[], None]) -> None:
        """``handle()`` reads until its socket is empty, but its own sends may take in the
        signal of a message come meanwhile: asked again until the socket holds none."""
        while holds_message(sock):
            handle()

    def _poll_timeout_ms(self) -> int:
        if self.reported.backlog.pending:
            return 0  # outcomes wait to be counted: look at the sockets and go on
        wake_s = min(self._next_liveness_check_s, self._next_snapshot_s, self._next_front_beat_s,
                     self._next_metrics_s)
        for soonest_s in (self.calls.next_deadline_s(), self.batcher.next_close_s()):
            if soonest_s is not None and soonest_s < wake_s:
                wake_s = soonest_s
        return max(0, int((wake_s - self.clock()) * 1000) + 1)

    def _receive(self, sock: zmq.Socket, handler: Callable[[list[bytes]], None]) -> bool:
        """Handle what ``sock`` holds: at most RECEIVE_BATCH messages or RECEIVE_BUDGET_S
        of work, whichever comes first; True if it stopped with messages left, which wait
        for the next turn."""
        stop_s = self.clock() + RECEIVE_BUDGET_S
        for count in range(1, RECEIVE_BATCH + 1):
            if not holds_message(sock):
                return False
            handler(recv_frames(sock, _NOBLOCK))
            if self.outbox.held >= protocol.COALESCE_ITEMS:
                self.outbox.flush()  # one message's worth: send it while the next ones are read
            if count % BUDGET_CHECK_EVERY == 0 and self.clock() > stop_s:
                return True
        return True

    # -- callers -------------------------------------------------------------------------

    def _on_front(self, frames: list[bytes]) -> None:
        caller, message = frames[0], protocol.decode_or_log(frames[1:], log, "front", self.dropped_lines)
        kind = type(message)
        # ``kind is X`` narrows message to X as ``type(message) is X`` would, but mypy does not follow
        # it through ``kind`` (and one type() call per branch would cost more): hence the ignores.
        if kind is protocol.Request:
            self._on_request(caller, message)  # type: ignore[arg-type]
        elif kind is protocol.Requests:
            for request in message.items:  # type: ignore[union-attr]
                self._on_request(caller, request)  # type: ignore[arg-type]
        elif kind is protocol.Collapsible:
            self._on_collapsible(caller, message)  # type: ignore[arg-type]
        elif kind is protocol.BatchRequest:
            self._on_request(caller, message, batch=True)  # type: ignore[arg-type]
        elif kind is protocol.Report:
            self.reported.receive(message)  # type: ignore[arg-type]
        elif kind is protocol.Declare:  # semaphore commands: no worker says what their classes set
            self.commands.learn_front_declared(message.commands)  # type: ignore[union-attr]
        elif message is not None:
            protocol.log_unexpected(log, self.dropped_lines, "front", kind.__name__)

    def _admit(self, caller: bytes, message: Any) -> tuple[Call, Pool] | None:
        """The breaker and pool checks every call passes; None if it was answered here."""
        self.requests_received += 1
        now_s = self.clock()
        deadline_s = now_s + message.timeout_ms / 1000
        record = self.commands.get(message.command)
        admission = record.breaker.admit(deadline_s)
        if admission is Admission.SHORT_CIRCUIT:
            for _ in range(self._calls_in(message)):
                record.record(Event.SHORT_CIRCUITED, 0.0)
            self.call_log.rejections.note(message.command, message.dependency, Event.SHORT_CIRCUITED.value)
            self._answer_caller(caller, message.call_id, Event.SHORT_CIRCUITED, 0.0, protocol.encode_error(
                "ShortCircuited", f"the breaker of {message.command} is {record.breaker.effective_state()}"))
            return None
        trial = record.breaker.trial_token if admission is Admission.TRIAL else 0
        pool = self._pool_for_request(message.dependency)
        if pool is None:
            for _ in range(self._calls_in(message)):
                record.record(Event.THREAD_POOL_REJECTED, 0.0, trial)
            self.call_log.rejections.note(message.command, message.dependency, Event.THREAD_POOL_REJECTED.value)
            self._answer_caller(caller, message.call_id, Event.THREAD_POOL_REJECTED, 0.0, protocol.encode_error(
                "NoSuchPool", f"no pool {message.dependency!r}: no worker has registered for it "
                f"and [pools.{message.dependency}] is not configured"))
            return None
        record.pool = pool.name
        call = Call(self.calls.new_id(), caller, message.call_id, message.command, pool.name,
                    deadline_s, message.payload, now_s, record, trial)
        return call, pool

    @staticmethod
    def _calls_in(message: Any) -> int:
        """The calls ``message`` carries: a front's batch carries several."""
        return calls_in_batch(message.payload) if type(message) is protocol.BatchRequest else 1

    def _on_request(self, caller: bytes, message: protocol.Request | protocol.BatchRequest,
                    batch: bool = False) -> None:
        admitted = self._admit(caller, message)
        if admitted is not None:
            call, pool = admitted
            call.batch = batch
            self._submit(call, pool)

    def _on_collapsible(self, caller: bytes, message: protocol.Collapsible) -> None:
        """Hold a collapsible call in the batching stage; send its batch if it is full."""
        admitted = self._admit(caller, message)
        if admitted is not None:
            record = admitted[0].record
            record.collapse_window_ms, record.collapse_max_batch = message.window_ms, message.max_batch
            full = self.batcher.add(admitted[0], message.shard, message.window_ms / 1000, message.max_batch)
            if full is not None:
                self._submit_batch(full)

    def _submit_batch(self, open_batch: OpenBatch) -> None:
        """One call per batch: the earliest deadline, identical arguments once; a batch
        whose arguments would not fit in one message is split."""
        for members in protocol.split_by_size(open_batch.members, lambda member: member.payload):
            self._submit_members(members)

    def _submit_members(self, members: list[Call]) -> None:
        now_s = self.clock()
        if any(member.deadline_s <= now_s for member in members):  # the batch closed at its deadline
            for member in members:
                if member.deadline_s <= now_s:
                    self._answer(member, Event.TIMEOUT, 0.0, protocol.encode_error(
                        "Timeout", "waited in the batching stage past its deadline; never ran"), ran=False)
            members = [member for member in members if member.deadline_s > now_s]
            if not members:
                return
        payloads, indexes = unique_payloads(members)
        first = members[0]
        call = Call(self.calls.new_id(), b"", 0, first.command, first.pool,
                    min(member.deadline_s for member in members), protocol.pack_batch(payloads),
                    min(member.received_s for member in members), first.record,
                    batch=True, members=members, member_indexes=indexes)
        first.record.record_batch(len(members))
        self._submit(call, self.pools[first.pool])

    def _submit(self, call: Call, pool: Pool) -> None:
        """To a free slot, else to the queue, else rejected at once."""
        worker = pool.take_slot()
        if worker is not None:
            self.calls.add(call)
            self._dispatch(call, worker, self.clock())
        elif pool.has_queue_room():
            self.calls.add(call)
            pool.queue.append(call)
        else:
            self._answer(call, Event.THREAD_POOL_REJECTED, 0.0, protocol.encode_error(
                "PoolFull", f"pool {pool.name!r} is full: {pool.busy} of {pool.slots} slots busy "
                f"and {len(pool.queue)} of {pool.queue_size} queued"))

    def _pool_for_request(self, name: str) -> Pool | None:
        pool = self.pools.get(name)
        if pool is None and name in self.config.pools:
            pool = self._pool(name)
        return pool

    def _pool_has_workers(self, name: str) -> bool:
        pool = self.pools.get(name)
        return pool is not None and bool(pool.workers)

    def _pool(self, name: str) -> Pool:
        pool = self.pools.get(name)
        if pool is None:
            pool = self.pools[name] = Pool(name, self.config.pool_setting(name, "queue_size"), self.clock)
        return pool

    def _answer_caller(self, caller: bytes, caller_call_id: int, outcome: Event,
                       execution_ms: float, payload: bytes) -> None:
        """Held in the outbox until the batch being read is handled (broker/outbox.py)."""
        self.outbox.reply(caller, (caller_call_id, outcome, execution_ms, payload))

    def _answer(self, call: Call, outcome: Event, execution_ms: float, payload: bytes, ran: bool = True) -> None:
        """The one way a call that reached a pool is answered: counted, then replied.

        Its execution latency is the worker's time, or (answered here: lost, late) the time
        since it came; a call that never ran (expired in the queue) has none, as in Hystrix,
        so a pool with no room does not look like a slow dependency.
        """
        if call.members is not None:
            self._answer_members(call, outcome, execution_ms, payload, ran)
            return
        call.answered = True
        self.pools[call.pool].events.add(outcome)
        total_ms = (self.clock() - call.received_s) * 1000
        latency_ms = (execution_ms or total_ms) if ran else 0.0
        if call.batch:  # a batch a front collapsed: counted as its calls
            self._record_request_batch(call, outcome, payload, latency_ms, total_ms, ran)
        else:
            call.record.record(outcome, latency_ms, call.trial, total_ms, ran)
        self._answer_caller(call.caller, call.caller_call_id, outcome, execution_ms, payload)
        self.call_log.answered(call.command, call.pool, outcome, latency_ms, total_ms, payload)

    def _answer_members(self, batch: Call, outcome: Event, execution_ms: float, payload: bytes, ran: bool) -> None:
        """Each call of a batch gets its own result; a whole-batch failure fails each."""
        batch.answered = True
        members = cast("list[Call]", batch.members)  # _answer() comes here only for a batch with members
        member_indexes = cast("list[int]", batch.member_indexes)  # made with members (_submit_members)
        results = None
        if outcome is Event.SUCCESS:
            try:
                results = protocol.unpack_batch_results(payload)
                if len(results) <= max(member_indexes):
                    raise protocol.ProtocolError(f"{len(results)} results for {max(member_indexes) + 1} calls")
            except protocol.ProtocolError as exc:
                results = None
                outcome, payload = Event.FAILURE, protocol.encode_error("BadBatchResult", str(exc))
        for member, index in zip(members, member_indexes):
            member_outcome, member_payload = results[index] if results is not None else (outcome, payload)
            member.record.record_collapsed()
            self._answer(member, member_outcome, execution_ms, member_payload, ran)

    @staticmethod
    def _record_request_batch(batch: Call, outcome: Event, payload: bytes, latency_ms: float, total_ms: float,
                              ran: bool) -> None:
        """Count a front's batch (``collapse = "request"``) call by call, as a global one is:
        each COLLAPSED and its own outcome. Its first call stands for a half-open breaker's
        trial, as one member of a global batch does."""
        outcomes = request_batch_outcomes(batch.payload, outcome, payload)
        record = batch.record
        record.record_batch(len(outcomes))
        trial = batch.trial
        for call_outcome in outcomes:
            record.record_collapsed()
            record.record(call_outcome, latency_ms, trial, total_ms, ran)
            trial = 0

    def _dispatch(self, call: Call, worker: WorkerRecord, now_s: float) -> None:
        call.worker = worker.identity
        call.beat = self.beats.current
        worker.held.add(call.call_id)
        call.record.started()
        self.pools[call.pool].call_started()
        remaining_ms = max(1, int((call.deadline_s - now_s) * 1000))
        if call.batch:
            self.outbox.to_worker(worker.identity, protocol.batch(call.call_id, call.command, remaining_ms,
                                                                  call.payload))
        else:  # held in the outbox until the batch being read is handled (broker/outbox.py)
            self.outbox.call(worker.identity, (call.call_id, call.command, remaining_ms, call.payload))

    def _dispatch_queued(self, pool: Pool, now_s: float) -> None:
        """Hand queued calls to free slots; a call past its deadline is answered, not run."""
        while pool.queue and pool.has_free_slot():
            call = pool.queue.popleft()
            if call.deadline_s <= now_s:
                self._expire_queued(call)
                continue
            self._dispatch(call, pool.take_slot(), now_s)  # type: ignore[arg-type]  # has_free_slot(): not None

    # -- deadlines -----------------------------------------------------------------------

    def _expire(self, now_s: float) -> None:
        for call in self.calls.expired(now_s):
            if call.worker is None:
                self.pools[call.pool].queue.remove(call)
                self._expire_queued(call)
            else:
                worker = self.workers.get(call.worker)
                pid = worker.pid if worker else "?"
                self._answer(call, Event.TIMEOUT, 0.0, protocol.encode_error(
                    "Timeout", f"worker pid {pid} of pool {call.pool!r} did not answer before the deadline"))

    def _expire_queued(self, call: Call) -> None:
        self.calls.pop(call.call_id)
        self._answer(call, Event.TIMEOUT, 0.0, protocol.encode_error(
            "Timeout", f"waited in the queue of pool {call.pool!r} past its deadline; never ran"), ran=False)

    # -- workers -------------------------------------------------------------------------

    def _on_back(self, frames: list[bytes]) -> None:
        identity, message = frames[0], protocol.decode_or_log(frames[1:], log, "back", self.dropped_lines)
        if message is None:
            return
        now_s = self.clock()
        worker = self.workers.get(identity)
        kind = type(message)
        # As in _on_front: ``kind is X`` narrows message, though mypy does not see it.
        if kind is protocol.Ready:
            self._register(identity, message, now_s)  # type: ignore[arg-type]
            return
        if worker is None:
            if kind in _WORKER_KINDS:
                # A worker from before a broker restart, or one we declared lost: re-register.
                self.outbox.to_worker(identity, protocol.signal(protocol.Kind.RESET))
            else:  # no worker sends it: a front pointed at the workers' socket, say
                protocol.log_unexpected(log, self.dropped_lines, "back", kind.__name__)
            return
        worker.last_seen_s = now_s
        if kind is protocol.Result:
            self._on_result(worker, message, now_s)  # type: ignore[arg-type]
        elif kind is protocol.Results:
            for result in message.items:  # type: ignore[union-attr]
                self._on_result(worker, result, now_s)  # type: ignore[arg-type]
        elif kind is protocol.Stats:
            self._on_stats(worker, message, now_s)  # type: ignore[arg-type]
        elif kind is protocol.Signal:
            self._on_worker_signal(worker, message.kind, now_s)  # type: ignore[union-attr]
        else:
            protocol.log_unexpected(log, self.dropped_lines, "back", kind.__name__, worker_pid=worker.pid)

    def _on_result(self, worker: WorkerRecord, result: protocol.Result, now_s: float) -> None:
        if result.call_id in worker.ghosts:  # a call from before it registered again: only a free slot
            worker.ghosts.discard(result.call_id)
            self._free_slot(worker, now_s)
            return
        call = self.calls.get(result.call_id)
        if call is None or call.worker != worker.identity:
            log.warning("unknown_result_dropped", worker_pid=worker.pid, call_id=result.call_id)
            return
        self.calls.pop(call.call_id)
        worker.held.discard(call.call_id)
        worker.calls_served += 1
        call.record.finished()
        self.pools[worker.pool].call_finished(completed=True)
        if not call.answered:
            self._answer(call, result.outcome, result.execution_ms, result.payload)
        self._free_slot(worker, now_s)

    def _free_slot(self, worker: WorkerRecord, now_s: float) -> None:
        pool = self.pools[worker.pool]
        pool.release_slot(worker)
        self._dispatch_queued(pool, now_s)
        if worker.draining and not worker.busy:
            log.info("worker_drained", dependency=worker.pool, worker_pid=worker.pid)

    # -- breakers and runtime settings, published to fronts ----------------------------

    def _on_breaker_transition(self, breaker: Breaker, old: BreakerState, new: BreakerState, reason: str) -> None:
        self.call_log.breaker_changed(breaker, old, new, reason)
        self._publish_breaker(breaker)

    def _publish_breaker(self, breaker: Breaker) -> None:
        send_frames(self.events, protocol.breaker_change(breaker.key, *published_state(breaker)))

    def _publish_snapshot(self, now_s: float) -> None:
        self._next_snapshot_s = now_s + SNAPSHOT_INTERVAL_S
        self.commands.drop_idle()
        send_frames(self.events, bounded.breaker_snapshot(self, self._trim_log))

    def set_setting(self, dotted_key: str, value: Any) -> Any:
        """Change a setting while running; in force here at once, on fronts within a second."""
        dotted_key, value = check_override(dotted_key, value)
        if dotted_key not in self.overrides and len(self.overrides) >= MAX_OVERRIDES:
            raise ConfigError(dotted_key, f"at most {MAX_OVERRIDES} runtime settings")
        self.overrides[dotted_key] = value
        self._apply_overrides(dotted_key, f"{dotted_key} = {value!r}")
        log.info("setting_changed", key=dotted_key, value=value)
        return value

    def unset_setting(self, dotted_key: str) -> None:
        """Drop a runtime setting: the file's value, or the default, is in force again."""
        if dotted_key not in self.overrides:
            raise ConfigError(dotted_key, "not a runtime setting now (`seawall status` lists them)")
        del self.overrides[dotted_key]
        self._apply_overrides(dotted_key, f"{dotted_key} unset")
        log.info("setting_unset", key=dotted_key)

    def _apply_overrides(self, dotted_key: str, change: str) -> None:
        """Put the runtime settings in force after ``dotted_key`` changed; publish what it moved."""
        self.config = with_overrides(self.file_config, self.overrides)
        section, *named, _ = dotted_key.split(".")
        changed_command = ".".join(named) if section == "commands" else None  # a key may hold dots
        states_before = {key: record.breaker.effective_state() for key, record in self.commands.items()}
        self.commands.reconfigure(self.config)
        for name, pool in self.pools.items():
            pool.queue_size = self.config.pool_setting(name, "queue_size")
        for key, record in self.commands.items():
            if key == changed_command or section == "defaults":
                self._publish_breaker(record.breaker)
            state = record.breaker.effective_state()
            if state is not states_before.get(key, state):  # forced open or closed by an operator
                self.call_log.breaker_changed(record.breaker, states_before[key], state, change)
        self._publish_snapshot(self.clock())

    # -- operators -----------------------------------------------------------------------

    def _on_control(self, frames: list[bytes]) -> None:
        if len(frames) < 2:
            log.warning("malformed_message_dropped", source="control", error="no routing frames")
            return
        envelope, message = frames[:1], protocol.decode_or_log(frames[1:], log, "control", self.dropped_lines)
        if type(message) is not protocol.Control:
            answer = (False, {"error": "expected a CONTROL message"})
        else:
            answer = handle_control(self, message)
        send_frames(self.control, [*envelope, *protocol.control_reply(*answer)])

    def status_without_commands(self) -> dict[str, Any]:
        """Status but its commands, which ``broker.bounded.status`` adds as many as fit."""
        now_s = self.clock()
        return {
            "uptime_s": round(now_s - self.started_s, 3),
            "calls_in_flight": len(self.calls),
            "requests_received": self.requests_received,
            "pools": {name: pool.status(now_s) for name, pool in sorted(self.pools.items())},
            "overrides": dict(self.overrides),
        }

