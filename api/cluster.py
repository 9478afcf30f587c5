"""Turbine for seawall: several brokers' metrics snapshots aggregated into one cluster view.

Pure functions over the dicts of ``shared/metrics_schema.py``. The view has a snapshot's
shape (``commands``, ``pools``, ``collapsers`` with the same fields) plus who reported it:
``brokers`` (id -> host, pid, age_s of its last snapshot), ``time_ms``, and per entry
``hosts`` (brokers reporting it); per command also ``breakers`` (brokers in each state)
and ``rate_history`` (filled in by the feed).

How each field combines across brokers:

- counts, events, concurrency, pool sizes and queues: summed (the cluster's totals).
  ``max_concurrent``, ``rolling_max_busy`` and ``largest_slots`` are sums of per-broker
  maxima — an upper bound of the cluster's, as Turbine reports them.
- ``error_pct``: recomputed from the summed ``error_count`` / ``request_count``, so a quiet
  broker with one failure does not weigh as much as a busy healthy one.
- ``breaker``: the most severe state any broker reports (OPEN > HALF_OPEN > CLOSED).
- latency and batch-size percentiles cannot be merged exactly without the histograms;
  each percentile is the average of the brokers' own, weighted by how many calls each
  executed in the window (batches, for batch sizes), so the view follows where the
  traffic is. The "0" and "100" points are exact: the least of the minima, the greatest
  of the maxima. A broker with no latency data yet (all zeros) does not count.
- settings, pool, isolation, force: cluster-wide by design; taken from the first broker
  (by id) that reports the entry.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from shared.events import Event

#: Most commands (and pools, collapsers) in one view; the busiest are kept.
MAX_VIEW_ENTRIES = 1000
#: Breaker states, least severe first.
BREAKER_SEVERITY = ("CLOSED", "HALF_OPEN", "OPEN")

#: Events that are a call's first outcome: each call counts once. Fallback events and
#: COLLAPSED are second events of a call already counted.
CALL_EVENTS = (Event.SUCCESS, Event.FAILURE, Event.TIMEOUT, Event.BAD_REQUEST, Event.SHORT_CIRCUITED,
               Event.THREAD_POOL_REJECTED, Event.SEMAPHORE_REJECTED, Event.WORKER_LOST,
               Event.RESPONSE_FROM_CACHE)
#: Events of calls that ran in a worker: the weight of a broker's latency percentiles.
EXECUTED_EVENTS = (Event.SUCCESS, Event.FAILURE, Event.TIMEOUT, Event.BAD_REQUEST, Event.WORKER_LOST)

_COMMAND_SUMS = ("error_count", "request_count", "concurrent", "max_concurrent")
_POOL_SUMS = ("workers", "slots", "busy", "queued", "queue_size", "largest_slots", "completed_total",
              "submitted_total", "rolling_executed", "rolling_max_busy", "rolling_rejected")
_COLLAPSER_SUMS = ("rolling_batches", "rolling_requests_batched")


def aggregate(snapshots: Sequence[Mapping[str, Any]], *, ages_s: Sequence[float] | None = None,
              time_ms: int | None = None, rate_history: Mapping[str, Sequence[float]] | None = None,
              max_entries: int = MAX_VIEW_ENTRIES) -> dict[str, Any]:
    """The cluster view of ``snapshots`` (one per broker; ``ages_s`` in the same order)."""
    ordered = sorted(zip(snapshots, ages_s or [0.0] * len(snapshots)), key=lambda pair: pair[0]["broker"]["id"])
    brokers = {snap["broker"]["id"]: {"host": snap["broker"]["host"], "pid": snap["broker"]["pid"],
                                      "age_s": round(age_s, 3)} for snap, age_s in ordered}
    entries = [snap for snap, _ in ordered]
    history = rate_history or {}
    commands = {key: {**_command(reports), "rate_history": list(history.get(key, ()))}
                for key, reports in _busiest(_by_key(entries, "commands"), request_volume, max_entries)}
    return {
        "brokers": brokers,
        "time_ms": time_ms if time_ms is not None else max((s["time_ms"] for s in entries), default=0),
        "commands": commands,
        "pools": {name: _pool(reports) for name, reports in
                  _busiest(_by_key(entries, "pools"), lambda pool: pool["submitted_total"], max_entries)},
        "collapsers": {key: _collapser(reports) for key, reports in
                       _busiest(_by_key(entries, "collapsers"), lambda c: c["rolling_requests_batched"], max_entries)},
    }


def request_volume(command: Mapping[str, Any]) -> int:
    """Calls of a command in its window: every call's first outcome (:data:`CALL_EVENTS`)."""
    events = command["events"]
    return sum(events.get(event.value, 0) for event in CALL_EVENTS)


def request_rate(command: Mapping[str, Any]) -> float:
    """Calls per second over the command's rolling window."""
    window_s = command["settings"]["window_s"]
    return request_volume(command) / window_s if window_s > 0 else 0.0


def _by_key(snapshots: Iterable[Mapping[str, Any]], section: str) -> dict[str, list[Mapping[str, Any]]]:
    reports: dict[str, list[Mapping[str, Any]]] = {}
    for snap in snapshots:
        for key, entry in snap[section].items():
            reports.setdefault(key, []).append(entry)
    return reports


def _busiest(reports: dict[str, list[Mapping[str, Any]]], volume: Any,
             max_entries: int) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """Entries sorted by key; the ``max_entries`` busiest if there are more."""
    items = sorted(reports.items())
    if len(items) > max_entries:
        kept = sorted(items, key=lambda item: -sum(volume(entry) for entry in item[1]))[:max_entries]
        items = sorted(kept)
    return items


def _command(reports: list[Mapping[str, Any]]) -> dict[str, Any]:
    first = reports[0]
    sums = {name: sum(entry[name] for entry in reports) for name in _COMMAND_SUMS}
    breakers = {state: sum(1 for entry in reports if entry["breaker"] == state) for state in BREAKER_SEVERITY}
    weights = [_executed(entry) for entry in reports]
    return {
        "pool": first["pool"],
        "isolation": first["isolation"],
        "breaker": max((entry["breaker"] for entry in reports), key=BREAKER_SEVERITY.index),
        "force": first["force"],
        "error_pct": round(100 * sums["error_count"] / sums["request_count"], 2) if sums["request_count"] else 0.0,
        "error_count": sums["error_count"],
        "request_count": sums["request_count"],
        "events": _sum_maps([entry["events"] for entry in reports]),
        "events_total": _sum_maps([entry["events_total"] for entry in reports]),
        "concurrent": sums["concurrent"],
        "max_concurrent": sums["max_concurrent"],
        "latency_execute": merge_percentiles([entry["latency_execute"] for entry in reports], weights),
        "latency_total": merge_percentiles([entry["latency_total"] for entry in reports], weights),
        "settings": dict(first["settings"]),
        "hosts": len(reports),
        "breakers": breakers,
    }


def _executed(command: Mapping[str, Any]) -> int:
    events = command["events"]
    return sum(events.get(event.value, 0) for event in EXECUTED_EVENTS)


def _pool(reports: list[Mapping[str, Any]]) -> dict[str, Any]:
    return {**{name: sum(entry[name] for entry in reports) for name in _POOL_SUMS},
            "window_s": reports[0]["window_s"], "hosts": len(reports)}


def _collapser(reports: list[Mapping[str, Any]]) -> dict[str, Any]:
    first = reports[0]
    return {
        **{name: sum(entry[name] for entry in reports) for name in _COLLAPSER_SUMS},
        "batch_size": merge_percentiles([entry["batch_size"] for entry in reports],
                                        [entry["rolling_batches"] for entry in reports]),
        "max_batch": first["max_batch"],
        "window_ms": first["window_ms"],
        "hosts": len(reports),
    }


def _sum_maps(maps: list[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in maps:
        for name, count in counts.items():
            total[name] = total.get(name, 0) + count
    return total


def merge_percentiles(distributions: Sequence[Mapping[str, float]], weights: Sequence[float]) -> dict[str, float]:
    """One distribution's ``mean`` and percentiles from several (same keys, in order).

    Only distributions with data (a non-zero maximum) count. Weights are the volumes
    behind each; if every one with data has weight 0 (its calls fell out of the shorter
    counting window), they weigh the same.
    """
    keys = list(distributions[0])
    with_data = [(dist, weight) for dist, weight in zip(distributions, weights) if max(dist.values()) > 0]
    if not with_data:
        return {key: 0.0 for key in keys}
    if len(with_data) == 1:
        return dict(with_data[0][0])
    total_weight = sum(weight for _, weight in with_data)
    if total_weight <= 0:
        with_data = [(dist, 1.0) for dist, _ in with_data]
        total_weight = float(len(with_data))
    merged = {key: round(sum(dist[key] * weight for dist, weight in with_data) / total_weight, 3) for key in keys}
    if "0" in merged:
        merged["0"] = min(dist["0"] for dist, _ in with_data)
    merged["100"] = max(dist["100"] for dist, _ in with_data)
    return merged
