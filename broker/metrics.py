"""The broker's metrics snapshot: what the dashboard, ``/hystrix.stream`` and ``/metrics`` show.

The broker owns every count that matters (callers report the outcomes it does not see),
so it builds one snapshot every half second and publishes it on its events socket; any
number of fronts, on any host, aggregate the snapshots of the brokers they listen to.
The shape is ``shared/metrics_schema.py``'s, and every field is what Hystrix's stream
needs, in seawall's own names.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any, cast

from broker.commands import CommandRecord
from broker.pool import POOL_WINDOW_S, Pool
from shared.events import Event
from shared.metrics_schema import MAX_ENTRIES, PERCENTILE_KEYS

if TYPE_CHECKING:
    from broker.server import Broker
    from shared.rolling import RollingCounts

#: How often the broker publishes a snapshot (Hystrix's stream: every 500 ms).
METRICS_INTERVAL_S = 0.5

#: each event with its wire name, read once: an enum's ``.value`` is a descriptor call, and
#: a snapshot of 1,000 commands read it some 30,000 times
_EVENT_NAMES = {event: event.value for event in Event}
_PERCENTILE_POINTS: dict[tuple[str, ...], tuple[float, ...]] = {
    keys: tuple(float(key) for key in keys) for keys in (PERCENTILE_KEYS, PERCENTILE_KEYS[1:])}

_SETTINGS = ("timeout_s", "breaker_volume_threshold", "breaker_error_pct", "breaker_sleep_s", "breaker_force",
             "window_s", "window_buckets", "semaphore_max", "fallback_max")


def broker_identity() -> dict[str, Any]:
    host = socket.gethostname()[:100]
    return {"id": f"{host}:{os.getpid()}", "host": host, "pid": os.getpid()}


def snapshot(broker: Broker, identity: dict[str, Any]) -> dict[str, Any]:
    """Every command, pool and collapser the broker knows, at most MAX_ENTRIES of each
    (the busiest, should there ever be more)."""
    records = _busiest(broker.commands.items(), lambda record: record.counts.total())
    return {
        "broker": {**identity, "uptime_s": round(broker.clock() - broker.started_s, 3)},
        "time_ms": int(time.time() * 1000),
        "commands": {key: command_metrics(broker, key, record) for key, record in records},
        "pools": {name: pool_metrics(pool) for name, pool in
                  _busiest(broker.pools.items(), lambda pool: pool.submitted_total)},
        "collapsers": {key: collapser_metrics(record) for key, record in records
                       if record.batch_sizes is not None},
    }


def _busiest(items: list[tuple[str, Any]] | Any, volume: Any) -> list[tuple[str, Any]]:
    items = list(items)
    if len(items) > MAX_ENTRIES:
        items = sorted(items, key=lambda item: volume(item[1]), reverse=True)[:MAX_ENTRIES]
    return items


def command_metrics(broker: Broker, key: str, record: CommandRecord) -> dict[str, Any]:
    volume, error_pct, _ = record.breaker.health()
    events = record.counts.totals()
    class_settings = broker.commands.class_settings.get(key, {})
    return {
        "pool": record.pool,
        "isolation": "THREAD" if record.pool else "SEMAPHORE",
        "breaker": record.breaker.effective_state().value,
        "force": record.breaker.settings.force,
        "error_pct": round(error_pct, 2),
        "error_count": round(volume * error_pct / 100),
        "request_count": volume,
        "events": {name: events.get(event, 0) for event, name in _EVENT_NAMES.items()},
        "events_total": {_EVENT_NAMES[event]: count for event, count in record.totals.items()},
        "concurrent": max(0, record.running),
        "max_concurrent": int(record.max_running.max()),
        "latency_execute": _percentiles(record.latency),
        "latency_total": _percentiles(record.total_latency),
        "settings": {name: broker.config.command_setting(key, name, class_settings.get(name)) for name in _SETTINGS},
    }


def pool_metrics(pool: Pool) -> dict[str, Any]:
    return {
        "workers": sum(1 for worker in pool.workers.values() if not worker.draining),
        "slots": pool.slots,
        "busy": pool.busy,
        "queued": len(pool.queue),
        "queue_size": pool.queue_size,
        "largest_slots": pool.largest_slots,
        "completed_total": pool.completed_total,
        "submitted_total": pool.submitted_total,
        "rolling_executed": pool.executed.total(),
        "rolling_max_busy": int(pool.max_running.max()),
        "rolling_rejected": pool.events.count(Event.THREAD_POOL_REJECTED),
        "window_s": POOL_WINDOW_S,
    }


def collapser_metrics(record: CommandRecord) -> dict[str, Any]:
    sizes = record.batch_sizes
    counts = cast("RollingCounts[str]", record.batch_counts)  # a collapser's: made with its batch_sizes
    return {
        "rolling_batches": counts.count("batches"),
        "rolling_requests_batched": counts.count("requests"),
        "batch_size": _percentiles(sizes, PERCENTILE_KEYS[1:]),
        "max_batch": record.collapse_max_batch,
        "window_ms": record.collapse_window_ms,
    }


def _percentiles(values: Any, keys: tuple[str, ...] = PERCENTILE_KEYS) -> dict[str, float]:
    """Mean and percentiles of a rolling distribution; zeros when it is empty."""
    points = _PERCENTILE_POINTS.get(keys) or tuple(float(key) for key in keys)
    by_point = values.percentiles(points) if values.count else {}
    return {"mean": round(values.mean_ms(), 3),
            **{key: round(by_point.get(point, 0.0), 3) for key, point in zip(keys, points)}}
