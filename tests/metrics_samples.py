"""Synthetic broker metrics snapshots for unit tests, checked against shared/metrics_schema.py."""

from __future__ import annotations

from typing import Any

from shared.events import Event
from shared.metrics_schema import PERCENTILE_KEYS, check_snapshot

SETTINGS = {"timeout_s": 1.0, "breaker_volume_threshold": 20, "breaker_error_pct": 50.0, "breaker_sleep_s": 5.0,
            "breaker_force": "auto", "window_s": 10.0, "window_buckets": 10, "semaphore_max": 10,
            "fallback_max": 10}


def latency(mean_ms: float = 0.0, **points: float) -> dict[str, float]:
    """A latency distribution: every percentile ``mean_ms`` unless given (``p99=...``, ``p99_5=...``)."""
    values = {"mean": mean_ms, **{key: mean_ms for key in PERCENTILE_KEYS}}
    for name, value in points.items():
        values[name[1:].replace("_", ".")] = value
    return values


def command(*, pool: str = "sample", breaker: str = "CLOSED", force: str = "auto", events: dict[str, int] | None = None,
            latency_ms: float | dict[str, float] = 0.0, total_ms: float | dict[str, float] | None = None,
            concurrent: int = 0, max_concurrent: int = 0, **settings: Any) -> dict[str, Any]:
    counts = {event.value: 0 for event in Event} | (events or {})
    request_count = sum(counts[name] for name in ("SUCCESS", "FAILURE", "TIMEOUT", "SHORT_CIRCUITED",
                                                  "THREAD_POOL_REJECTED", "SEMAPHORE_REJECTED", "WORKER_LOST"))
    error_count = request_count - counts["SUCCESS"]
    execute = latency_ms if isinstance(latency_ms, dict) else latency(latency_ms)
    total = total_ms if isinstance(total_ms, dict) else latency(total_ms if total_ms is not None else execute["mean"])
    return {
        "pool": pool, "isolation": "THREAD" if pool else "SEMAPHORE", "breaker": breaker, "force": force,
        "error_pct": round(100 * error_count / request_count, 2) if request_count else 0.0,
        "error_count": error_count, "request_count": request_count, "events": counts, "events_total": dict(counts),
        "concurrent": concurrent, "max_concurrent": max_concurrent,
        "latency_execute": execute, "latency_total": total,
        "settings": {**SETTINGS, **settings},
    }


def pool(*, workers: int = 1, slots: int = 2, busy: int = 0, queued: int = 0, queue_size: int = 5,
         completed_total: int = 0, submitted_total: int = 0, rolling_executed: int = 0, rolling_max_busy: int = 0,
         rolling_rejected: int = 0) -> dict[str, Any]:
    return {"workers": workers, "slots": slots, "busy": busy, "queued": queued, "queue_size": queue_size,
            "largest_slots": slots, "completed_total": completed_total, "submitted_total": submitted_total,
            "rolling_executed": rolling_executed, "rolling_max_busy": rolling_max_busy,
            "rolling_rejected": rolling_rejected, "window_s": 10.0}


def collapser(*, batches: int = 0, batched: int = 0, size: float = 0.0) -> dict[str, Any]:
    return {"rolling_batches": batches, "rolling_requests_batched": batched,
            "batch_size": {"mean": size, **{key: size for key in PERCENTILE_KEYS[1:]}},
            "max_batch": 100, "window_ms": 10.0}


def snapshot(broker_id: str = "host-a:100", *, commands: dict[str, Any] | None = None,
             pools: dict[str, Any] | None = None, collapsers: dict[str, Any] | None = None,
             time_ms: int = 1_700_000_000_000) -> dict[str, Any]:
    host, _, pid = broker_id.rpartition(":")
    return check_snapshot({
        "broker": {"id": broker_id, "host": host, "pid": int(pid), "uptime_s": 12.5},
        "time_ms": time_ms,
        "commands": commands or {},
        "pools": pools or {},
        "collapsers": collapsers or {},
    })
