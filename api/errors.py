"""What a command can raise to its caller, grouped by what the caller does next.

::

    CommandError                 the dependency did not answer usefully; degrade
    ├── CommandFailed            run() raised in the worker         FAILURE
    ├── CommandTimeout           no answer within timeout_s         TIMEOUT
    ├── ShortCircuited           the breaker is open                SHORT_CIRCUITED
    ├── Rejected                 no room: pool full, semaphore      THREAD_POOL_REJECTED,
    │                            full, fallback semaphore full      SEMAPHORE_REJECTED,
    │                                                               FALLBACK_REJECTED
    └── WorkerLost               the worker died holding the call   WORKER_LOST

    BadRequest                   the caller's arguments are wrong; fix the caller

A caller only sees a ``CommandError`` when the command has no fallback or its fallback
failed too (then the fallback's exception is ``__cause__``). ``BadRequest`` is not a
dependency fault: it skips the fallback and the breaker and reaches the caller as is.
Every error carries ``.command`` (the command key), ``.dependency`` and ``.cause``.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import Event


@dataclass(frozen=True)
class RemoteCause:
    """The exception a worker raised: its type name and message."""

    type_name: str
    message: str

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


class CommandError(Exception):
    """A command got no useful answer from its dependency (and no fallback saved it)."""

    failure: Event = Event.FAILURE

    def __init__(
        self,
        message: str,
        *,
        command: str,
        dependency: str | None = None,
        cause: RemoteCause | None = None,
        failure: Event | None = None,
    ) -> None:
        super().__init__(message)
        self.command = command
        self.dependency = dependency
        self.cause = cause
        if failure is not None:
            self.failure = failure


class CommandFailed(CommandError):
    failure = Event.FAILURE


class CommandTimeout(CommandError):
    failure = Event.TIMEOUT


class ShortCircuited(CommandError):
    failure = Event.SHORT_CIRCUITED


class Rejected(CommandError):
    failure = Event.THREAD_POOL_REJECTED


class WorkerLost(CommandError):
    failure = Event.WORKER_LOST


class BadRequest(Exception):
    """Raise in ``run()`` when the arguments are wrong: no fallback, no breaker count.

    On the caller's side ``.command`` names the command and ``.cause`` holds the remote
    exception's type and message.
    """

    def __init__(self, message: str = "", *, command: str | None = None, cause: RemoteCause | None = None) -> None:
        super().__init__(message)
        self.command = command
        self.cause = cause


#: The error class for each failure a call can end in.
ERROR_FOR_FAILURE: dict[Event, type[CommandError]] = {
    Event.FAILURE: CommandFailed,
    Event.TIMEOUT: CommandTimeout,
    Event.SHORT_CIRCUITED: ShortCircuited,
    Event.THREAD_POOL_REJECTED: Rejected,
    Event.SEMAPHORE_REJECTED: Rejected,
    Event.FALLBACK_REJECTED: Rejected,
    Event.WORKER_LOST: WorkerLost,
}
