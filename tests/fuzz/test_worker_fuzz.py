"""Hostile input on a worker: 100,000 random and mutated messages from its broker's side.

The test is the worker's broker: it takes the worker's READY, then sends it fuzzed CALL,
BATCH, CHAOS, signals and every other kind, with a real Echo call after every 200 whose
value is checked. The worker must stay up, answer every real call correctly, keep
beating, run only the commands registered for its pool, and never unpickle anything.
"""

from __future__ import annotations

import pytest

from fuzz.pump import CHUNK
from fuzz.scenarios import MESSAGES_PER_TARGET, SETTINGS, run_worker_fuzz, summary_line


@pytest.mark.timeout(180)
def test_worker_stays_up_and_correct_under_fuzz(make_cluster):
    cluster = make_cluster(SETTINGS)

    result = run_worker_fuzz(cluster)

    print(summary_line(result))
    stats = result.stats
    assert result.alive, cluster.logs()
    assert stats.sent >= MESSAGES_PER_TARGET
    assert stats.probes >= stats.sent // CHUNK  # real Echo calls, each value checked by the pump
    assert result.heartbeats >= stats.elapsed_s / cluster.config.broker_setting("heartbeat_s") / 2
    assert result.refusals == {
        "FaultyCall": "FAILURE UnknownCommand",
        "os.system": "FAILURE UnknownCommand",
        "api.command.Command": "FAILURE UnknownCommand",
        "Echo with pickled arguments": "FAILURE BadArguments",
    }
    # A frame over its size limit (sent last) is refused: ZeroMQ drops the connection; the
    # process is untouched and still drains and exits cleanly when told to stop.
    assert stats.oversize == 1
    assert cluster.stop_process(result.worker) == 0
