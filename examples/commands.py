"""Example commands for pool "example": a simulated greeting service that is sometimes slow or down."""

from __future__ import annotations

import random
import time

from api import BadRequest, Command

#: The simulated backend: most calls are quick, some slow, some fail.
TYPICAL_LATENCY_S = (0.005, 0.05)
SLOW_CALL_S = 0.5
SLOW_CALL_PCT = 5
ERROR_PCT = 10


class GetGreeting(Command):
    """A greeting for a user; falls back to a generic one."""

    dependency = "example"
    timeout_s = 0.2

    user_id: int

    def run(self) -> str:
        if self.user_id < 0:
            raise BadRequest(f"user_id must be >= 0, got {self.user_id}")
        roll = random.uniform(0, 100)
        if roll < ERROR_PCT:
            raise ConnectionError("greeting service refused the connection")
        slow = roll > 100 - SLOW_CALL_PCT
        time.sleep(SLOW_CALL_S if slow else random.uniform(*TYPICAL_LATENCY_S))
        return f"Hello, user {self.user_id}!"

    def fallback(self) -> str:
        return "Hello!"


class GetUserName(Command):
    """A user's display name; no fallback, so its failures reach the caller."""

    dependency = "example"

    user_id: int

    def run(self) -> str:
        time.sleep(random.uniform(*TYPICAL_LATENCY_S))
        return f"user-{self.user_id}"
