"""How a worker process ends, for supervisord (``exitcodes = 0``) and for operators.

Only 0 is an expected exit: supervisord restarts a worker after any other code
(``autorestart = unexpected``), which is what a recycled or hung worker needs.
"""

from shared.logging import EXIT_BAD_SETUP  # bad config or command modules, as every process

#: Drained and stopped on request (SIGTERM/SIGINT): do not restart.
EXIT_STOPPED = 0
#: Recycled after ``max_calls`` calls or over ``max_rss_mb``: drained first, start a fresh one.
EXIT_RECYCLED = 3
#: A call would not stop within the grace after its deadline (blocked in C, in a system
#: call, or holding the GIL): the process was ended to free its slot. Its traceback is logged.
EXIT_HUNG_CALL = 4

DESCRIPTIONS = {
    EXIT_STOPPED: "stopped on request after draining",
    EXIT_BAD_SETUP: "bad config or command modules",
    EXIT_RECYCLED: "recycled (max_calls or max_rss_mb)",
    EXIT_HUNG_CALL: "a call would not stop after its deadline",
}
