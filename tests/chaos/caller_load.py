"""Caller greenlets that keep two pools busy and keep a record of every call they make.

Each call gets a :class:`CallRecord` before it starts; every answer it gets is appended to
that record, so a call with no answer (lost) or with two (doubled) shows, and so does
how long its caller waited. :class:`RecordingClient` does the same one level down, on the
wire: it counts the broker's replies to each request the client sent.
"""

from __future__ import annotations

import itertools
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Iterator

import gevent

from api import Client, Command, CommandError
from chaos_commands import FALLBACK_VALUE
from shared import protocol

#: Answer kinds besides the failure names of a ``CommandError``.
VALUE, FALLBACK = "value", "fallback"
#: Answers kept per pool for the recovery streak.
RECENT_ANSWERS = 64


@dataclass(slots=True)
class CallRecord:
    call_id: int
    pool: str
    timeout_s: float
    started_s: float
    #: the front already knew the broker was down when the call started
    broker_down_at_start: bool
    #: one entry per answer: VALUE, FALLBACK, a failure name (TIMEOUT, ...) or "unexpected: TYPE"
    answers: list[str] = field(default_factory=list)
    finished_s: float | None = None
    #: for a CommandError: the remote (or local) cause's type name, e.g. ChaosError, WorkerBusy
    cause: str | None = None
    #: a value that is not this call's own id: the answer of another call
    misrouted: bool = False

    @property
    def kind(self) -> str | None:
        return self.answers[0] if self.answers else None

    @property
    def waited_s(self) -> float | None:
        return None if self.finished_s is None else self.finished_s - self.started_s


class RecordingClient(Client):
    """A :class:`Client` that also counts, per wire call id, the broker's replies.

    It hooks its connection's id counter and reply handler (private, on purpose: this is
    a test instrument that must see what the caller never does — a second reply to a
    request, dropped because nobody waits for it any more).
    """

    def __init__(self, config) -> None:
        super().__init__(config)
        self.sent_s: dict[int, float] = {}
        self.replies: Counter[int] = Counter()
        #: when the first reply to each wire id arrived
        self.replied_s: dict[int, float] = {}
        self.connection._call_ids = self._recorded_ids()
        self._deliver_reply = self.connection._on_reply
        self.connection._on_reply = self._on_reply

    def _recorded_ids(self) -> Iterator[int]:
        for call_id in itertools.count(1):
            self.sent_s[call_id] = time.monotonic()
            yield call_id

    def _on_reply(self, frames: list[bytes]) -> None:
        try:
            message = protocol.decode(frames)
        except protocol.ProtocolError:
            message = None
        replies = (message,) if type(message) is protocol.Reply else \
            message.items if type(message) is protocol.Replies else ()
        for reply in replies:
            self.replies[reply.call_id] += 1
            self.replied_s.setdefault(reply.call_id, time.monotonic())
        self._deliver_reply(frames)

    def unanswered(self, sent_between: tuple[float, float] | None = None) -> list[int]:
        """Wire ids sent (optionally: within a time span) that have had no reply yet."""
        low_s, high_s = sent_between or (float("-inf"), float("inf"))
        return [call_id for call_id, sent_s in self.sent_s.items()
                if call_id not in self.replies and low_s <= sent_s <= high_s]

    def doubled(self) -> list[int]:
        return [call_id for call_id, count in self.replies.items() if count > 1]


class Load:
    """``callers_per_pool`` greenlets per command, each calling it again and again.

    Every other call of a caller asks its fallback to decline, so half the failures reach
    the caller as a ``CommandError`` that names them and half as the fallback's value.
    """

    def __init__(self, client: Client, commands: dict[str, type[Command]], callers_per_pool: int,
                 work_s: float, pause_s: float) -> None:
        self.client = client
        self.commands = commands
        self.callers_per_pool = callers_per_pool
        self.work_s = work_s
        self.pause_s = pause_s
        self.records: dict[int, CallRecord] = {}
        #: per pool, the latest answered records in the order they were answered
        self.recent: dict[str, deque[CallRecord]] = {pool: deque(maxlen=RECENT_ANSWERS) for pool in commands}
        self._call_ids = itertools.count(1)
        self._callers: list[gevent.Greenlet] = []
        self._stopping = False

    def start(self) -> None:
        for pool, command_class in self.commands.items():
            for _ in range(self.callers_per_pool):
                self._callers.append(gevent.spawn(self._keep_calling, pool, command_class))

    def stop(self, timeout_s: float) -> None:
        """Let each caller finish the call it is in; kill any that does not within ``timeout_s``."""
        self._stopping = True
        gevent.joinall(self._callers, timeout=timeout_s)
        gevent.killall(self._callers, block=True, timeout=1.0)

    def _keep_calling(self, pool: str, command_class: type[Command]) -> None:
        for sequence in itertools.count():
            if self._stopping:
                return
            self._call(pool, command_class, fallback_declines=sequence % 2 == 1)
            gevent.sleep(self.pause_s)

    def _call(self, pool: str, command_class: type[Command], fallback_declines: bool) -> None:
        call_id = next(self._call_ids)
        command = command_class(call_id=call_id, work_s=self.work_s, fallback_declines=fallback_declines)
        record = CallRecord(call_id, pool, self.client.timeout_s(command_class), time.monotonic(),
                            self.client.broker_down)
        self.records[call_id] = record
        try:
            value = command.execute(client=self.client)
        except CommandError as error:
            record.cause = error.cause.type_name if error.cause else type(error).__name__
            self._answer(record, error.failure.value)
        except Exception as exc:  # noqa: BLE001 - anything else is a bug the suite must report
            self._answer(record, f"unexpected: {type(exc).__name__}: {exc}")
        else:
            self._answer(record, FALLBACK if value == FALLBACK_VALUE else VALUE)
            record.misrouted = value not in (FALLBACK_VALUE, call_id)

    def _answer(self, record: CallRecord, kind: str) -> None:
        record.finished_s = time.monotonic()
        record.answers.append(kind)
        self.recent[record.pool].append(record)

    # -- what the scenario asks while the load runs -----------------------------------------

    def streak(self, pool: str, since_s: float) -> int:
        """How many of the pool's latest answers in a row are values of calls started since ``since_s``."""
        count = 0
        for record in reversed(self.recent[pool]):
            if record.kind != VALUE or record.started_s < since_s:
                break
            count += 1
        return count

    def values(self, pool: str) -> int:
        return sum(1 for record in self.recent[pool] if record.kind == VALUE)
