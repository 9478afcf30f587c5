"""The front's feed of broker metrics: the latest snapshot of every broker, as one cluster view.

One SUB socket per source, connected to the events socket of a broker the front
aggregates (``[front] metrics_sources``) and subscribed to the metrics topic only, each
owned by one greenlet. Each broker publishes a snapshot every half second; the feed keeps
the latest per broker, forgets a broker silent for :data:`BROKER_SILENT_S` (or at once
when a new broker is heard on its source: it restarted), and aggregates what it holds
(``api/cluster.py``) for the dashboard, ``/hystrix.stream`` and ``/metrics``.
Once a second it also samples each command's request rate into a two-minute history,
the dashboard's sparkline.

A snapshot is foreign input (a front may listen to brokers on other hosts): a malformed
one is dropped and logged, at most once per :data:`WARN_INTERVAL_S` with the count. One
from a broker of another version is taken for what this front knows of it; what it does
not know is logged once per broker (``metrics_names_ignored``).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from typing import Any, Callable, NamedTuple

import gevent
import zmq

from api.cluster import MAX_VIEW_ENTRIES, aggregate, request_rate
from api.departed_totals import DepartedTotals
from shared import protocol
from shared.log_throttle import LogThrottle
from shared.logging import get_logger
from shared.metrics_schema import IGNORED
from shared.owned_socket import OwnedSocket
from shared.transport import make_socket

log = get_logger("api.metrics_feed")

#: A broker not heard from for this long leaves the view (it publishes every 0.5 s).
BROKER_SILENT_S = 3.0
#: Most brokers in one view; snapshots of more are dropped until one goes silent.
MAX_BROKERS = 64
#: A source no broker is heard on has its socket made again this often.
RECONNECT_INTERVAL_S = 10.0
#: Seconds between two samples of each command's request rate.
RATE_SAMPLE_INTERVAL_S = 1.0
#: Samples kept per command: two minutes at one a second, oldest first.
RATE_HISTORY_SAMPLES = 120
#: How long a built view is reused: streams and scrapes read it often, and building one
#: walks every broker's snapshot (snapshots arrive every 0.5 s per broker).
VIEW_REUSE_S = 0.25
#: At most one warning line per kind of dropped message in this long.
WARN_INTERVAL_S = 10.0


class _Received(NamedTuple):
    snapshot: dict[str, Any]
    received_s: float
    endpoint: str  # the source it came in on
    ignored: list[str]  # names the schema check ignored (shared/metrics_schema.py)


class MetricsFeed:
    """``start()`` in the front's process (it makes the socket there), ``view()`` from any greenlet."""

    def __init__(self, endpoints: list[str], clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, max_brokers: int = MAX_BROKERS,
                 max_entries: int = MAX_VIEW_ENTRIES,
                 secure: Callable[[zmq.Socket, str], None] | None = None) -> None:
        """``secure(sock, endpoint)`` is called before each connect (CURVE for tcp://)."""
        if not endpoints or len(endpoints) > max_brokers:
            raise ValueError(f"metrics sources: expected 1 to {max_brokers} endpoints, got {len(endpoints)}")
        self.endpoints = list(endpoints)
        self._clock = clock
        self._wall_clock = wall_clock
        self._max_brokers = max_brokers
        self._max_entries = max_entries
        self._secure = secure
        self._latest: dict[str, _Received] = {}
        #: the counts of brokers that left, kept in the view's counters (api/departed_totals.py)
        self._departed = DepartedTotals(max_entries)
        self._rate_history: dict[str, deque[float]] = {}
        self._reused: tuple[float, dict[str, Any]] | None = None  # (built at, view)
        self._drop_lines = LogThrottle(WARN_INTERVAL_S, clock)  # keyed by reason
        self._ignored_lines = LogThrottle(WARN_INTERVAL_S, clock)  # keyed by broker
        self.dropped: dict[str, int] = {"malformed": 0, "too_many_brokers": 0}
        self._sockets: dict[str, OwnedSocket] = {}  # by endpoint
        self._connected_s = 0.0
        self._sampler: gevent.Greenlet | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._connect(self.endpoints)
        self._sampler = gevent.spawn(self._sample_forever)
        self._sampler.name = "metrics-rate-sampler"
        log.info("metrics_feed_started", sources=self.endpoints)

    def _connect(self, endpoints: list[str]) -> None:
        """Make a socket for each of ``endpoints``, closing the one before, if any.

        A socket per source, not one for all: a snapshot's socket says which source it
        came in on, which tells a restarted broker (same source, new id) from a second one.
        """
        for endpoint in endpoints:
            if endpoint in self._sockets:
                self._sockets.pop(endpoint).close()
            sock = make_socket(zmq.SUB)
            sock.setsockopt(zmq.SUBSCRIBE, protocol.METRICS_TOPIC)
            if self._secure is not None:
                self._secure(sock, endpoint)
            sock.connect(endpoint)
            owned = OwnedSocket(sock, functools.partial(self.receive, endpoint=endpoint), f"metrics:{endpoint}")
            owned.start()
            self._sockets[endpoint] = owned
        self._connected_s = self._clock()

    def _reconnect_if_sources_silent(self) -> None:
        """Make the socket of each source no broker is heard on again, at most once per
        RECONNECT_INTERVAL_S (ZeroMQ's Paranoid Pirate).

        ZeroMQ reconnects by itself after a broker restart, but not after it dropped a
        connection over a protocol error (a frame over the size limit, a failed
        handshake). Against a source that is merely down this costs a connect.
        """
        if self._clock() - self._connected_s < RECONNECT_INTERVAL_S:
            return
        self._forget_silent()
        heard = {received.endpoint for received in self._latest.values()}
        silent = [endpoint for endpoint in self.endpoints if endpoint not in heard]
        if silent:
            self._connect(silent)

    def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.kill(block=False)
            self._sampler = None
        for owned in self._sockets.values():
            owned.close()
        self._sockets.clear()

    # -- what arrives --------------------------------------------------------------------

    def receive(self, frames: list[bytes], endpoint: str) -> None:
        """One message from the socket of source ``endpoint``: keep it if it is a
        well-formed snapshot."""
        try:
            snapshot = protocol.decode_metrics(frames)
        except ValueError as exc:  # protocol.ProtocolError is one
            self._drop("malformed", error=str(exc)[:500])
            return
        broker_id = snapshot["broker"]["id"]
        previous = self._latest.get(broker_id)
        if previous is None:
            self._forget_replaced(endpoint, snapshot)
            self._forget_silent()
            if len(self._latest) >= self._max_brokers:
                self._drop("too_many_brokers", broker=broker_id, max_brokers=self._max_brokers)
                return
            log.info("metrics_source_heard", broker=broker_id, endpoint=endpoint)
            self._departed.returned(broker_id)
        ignored = snapshot.pop(IGNORED, [])
        changed = ignored != (previous.ignored if previous else [])
        if ignored and changed and self._ignored_lines.due(broker_id) is not None:
            log.warning("metrics_names_ignored", broker=broker_id, ignored=ignored)
        self._latest[broker_id] = _Received(snapshot, self._clock(), endpoint, ignored)

    def _forget_replaced(self, endpoint: str, snapshot: dict[str, Any]) -> None:
        """Forget at once the broker that ``snapshot``'s broker, new to the view, replaced:
        one last heard on the same source before the new one started (it restarted).

        Waiting for it to be silent for BROKER_SILENT_S counted both in the view meanwhile:
        the pool's slots and workers doubled, and the brokers reporting. A broker heard
        since the new one started is running still, and stays.
        """
        started_s = self._clock() - snapshot["broker"]["uptime_s"]
        for broker_id, received in list(self._latest.items()):
            if received.endpoint == endpoint and received.received_s <= started_s:
                self._forget(broker_id, received)
                log.info("metrics_source_replaced", broker=broker_id, endpoint=endpoint,
                         by=snapshot["broker"]["id"])

    def _drop(self, reason: str, **fields: Any) -> None:
        self.dropped[reason] += 1
        if self._drop_lines.due(reason) is not None:
            log.warning("metrics_snapshot_dropped", reason=reason, dropped_so_far=self.dropped[reason], **fields)

    def _forget_silent(self) -> None:
        now_s = self._clock()
        for broker_id, received in list(self._latest.items()):
            if now_s - received.received_s > BROKER_SILENT_S:
                self._forget(broker_id, received)
                log.info("metrics_source_silent", broker=broker_id,
                         silent_s=round(now_s - received.received_s, 3))

    def _forget(self, broker_id: str, received: _Received) -> None:
        """Take ``broker_id`` out of the view; its counts stay in the view's counters."""
        del self._latest[broker_id]
        self._departed.left(broker_id, received.snapshot)
        self._reused = None

    # -- what the front reads ------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """The cluster view (``api/cluster.py``) of every broker heard in the last few seconds,
        at most :data:`VIEW_REUSE_S` old. Shared between readers: treat it as read-only."""
        self._forget_silent()
        now_s = self._clock()
        if self._reused is not None and now_s - self._reused[0] < VIEW_REUSE_S:
            return self._reused[1]
        received = list(self._latest.values())
        view = aggregate([r.snapshot for r in received], ages_s=[now_s - r.received_s for r in received],
                         time_ms=int(self._wall_clock() * 1000), rate_history=self._rate_history,
                         max_entries=self._max_entries)
        self._departed.add_to(view)
        self._reused = (now_s, view)
        return view

    def sample_rates(self) -> None:
        """Add one request-rate sample per command in the view; forget commands gone from it."""
        commands = self.view()["commands"]
        for key in [key for key in self._rate_history if key not in commands]:
            del self._rate_history[key]
        for key, command in commands.items():
            history = self._rate_history.get(key)
            if history is None:
                history = self._rate_history[key] = deque(maxlen=RATE_HISTORY_SAMPLES)
            history.append(round(request_rate(command), 3))
        self._reused = None  # the next view shows the new sample

    def _sample_forever(self) -> None:
        while True:
            gevent.sleep(RATE_SAMPLE_INTERVAL_S)
            try:
                self._reconnect_if_sources_silent()
                self.sample_rates()
            except Exception as exc:  # noqa: BLE001 - a bad sample must not end the sparkline for good
                log.error("metrics_rate_sample_failed", error=f"{type(exc).__name__}: {exc}")
