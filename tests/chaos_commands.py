"""Commands of the chaos suite: one for a pool that gets the faults, one for a pool that stays healthy.

Both answer with the caller's own ``call_id``, so an answer that reached the wrong call
would be seen; both have a fallback, which a call can ask to decline (``fallback_declines``)
so that its caller sees the ``CommandError`` and the suite learns which failure it was.
"""

from __future__ import annotations

import time

from api import Command

#: What a fallback that does not decline answers.
FALLBACK_VALUE = "fallback"


class FallbackDeclined(LookupError):
    """Raised by a fallback asked to decline: the caller then gets the CommandError."""


class _EchoesItsCall:
    """What both commands do; a plain mixin, so it is no command of its own."""

    call_id: int
    work_s: float = 0.0
    fallback_declines: bool = False

    def run(self) -> int:
        time.sleep(self.work_s)  # cooperative: workers run monkey-patched
        return self.call_id

    def fallback(self) -> str:
        if self.fallback_declines:
            raise FallbackDeclined(f"call {self.call_id} asked its fallback to decline")
        return FALLBACK_VALUE


class FaultyCall(_EchoesItsCall, Command):
    """A call to pool "faulty", where the chaos suite injects its faults."""

    dependency = "faulty"
    timeout_s = 0.3


class HealthyCall(_EchoesItsCall, Command):
    """A call to pool "healthy", which must keep answering whatever happens to "faulty"."""

    dependency = "healthy"
    timeout_s = 0.5
