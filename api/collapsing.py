"""Request-scoped collapsing: calls of one request context become one batch.

Calls of a ``collapse = "request"`` command made within ``collapse_window_ms`` of the
first, in the same request context and shard, are sent to the broker as one batch, which
one worker runs with ``run_batch``; each caller gets its own result. (``"global"``
collapsing happens in the broker's batching stage, across every front.)
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Hashable

import gevent
from gevent.event import AsyncResult

from api.command import Command
from shared.protocol import MAX_NAME_CHARS

if TYPE_CHECKING:
    from api.client import Client
    from shared import protocol


@dataclass(eq=False)
class BatchMember:
    command: Command
    waiter: AsyncResult[protocol.Reply]  # set to the Reply for this call
    deadline_s: float
    #: Its caller stopped waiting (killed, its own Timeout, the command's timeout): a batch
    #: not sent yet goes without it; one sent already does not answer it.
    left: bool = False

    def waits(self, now_s: float) -> bool:
        """Its caller still waits for an answer, and has time left to get one."""
        return not self.left and self.deadline_s > now_s


def shard_of(command: Command) -> str:
    """The batch shard of a call, as the wire carries it: distinct shards stay distinct.

    The text names the shard's type (``1``, ``"1"`` and ``True`` are three shards), and a
    shard too long for the wire is sent as its digest, never cut short: two shards that
    differ only past the limit would otherwise share a batch.
    """
    shard = command.shard()
    if shard is None:
        return ""
    text = f"{type(shard).__name__}:{shard!r}"
    if len(text) <= MAX_NAME_CHARS:
        return text
    return "sha256:" + hashlib.sha256(text.encode(errors="surrogatepass")).hexdigest()


class RequestBatcher:
    """Open batches of one request context, by (command class, shard)."""

    def __init__(self) -> None:
        self._open: dict[tuple[type, Hashable], list[BatchMember]] = {}

    def add(self, client: Client, command: Command, timeout_s: float, window_s: float,
            max_batch: int) -> BatchMember:
        """Put ``command`` in its open batch (opening one); its member, whose waiter gets the Reply."""
        key = (type(command), shard_of(command))
        members = self._open.get(key)
        if members is None:
            members = self._open[key] = []
            gevent.spawn_later(window_s, self._flush, client, key, members)
        member = BatchMember(command, AsyncResult(), time.monotonic() + timeout_s)
        members.append(member)
        if len(members) >= max_batch:  # full: the next call opens a new batch (the window's flush finds it gone)
            del self._open[key]
            gevent.spawn(client.send_batch, members)
        return member

    def _flush(self, client: Client, key: tuple[type, Hashable], members: list[BatchMember]) -> None:
        if self._open.get(key) is members:  # not sent already because it filled up
            del self._open[key]
            client.send_batch(members)  # blocks this greenlet until the reply


def batch_results(members: list[BatchMember], indexes: list[int], reply: Any, results: list[Any] | None) -> None:
    """Hand each member its own reply: its result from ``results``, or the batch's failure.
    A member whose caller left after the batch was sent is not answered: nobody reads it."""
    from shared.protocol import Reply

    for member, index in zip(members, indexes):
        if member.left:
            continue
        if results is None:
            member.waiter.set(reply)
        else:
            outcome, payload = results[index]
            member.waiter.set(Reply(reply.call_id, outcome, reply.execution_ms, payload))
