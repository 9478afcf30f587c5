"""``GET /metrics``: the cluster view in Prometheus's text format, for a Prometheus to scrape.

A custom collector reads the feed's view at each scrape; it lives in its own
``CollectorRegistry``, so nothing lands in prometheus_client's global one.

What a broker publishes are rolling-window counts (the last 10 s), not counts since
start, so they are gauges named ``..._rolling``: ``rate()`` does not apply to them, they
already are a window's worth. The commands' event counts and the pools'
``completed``/``submitted`` figures are counts since start, summed over brokers, so they
are true counters: a broker that leaves the view (restarted, silent) keeps its last
counts in the sum (``api/departed_totals.py``), so they reset only when the front
restarts. Latency comes as percentiles, from which no
histogram can be rebuilt honestly (no bucket counts), so it is a gauge per ``quantile``
label, in seconds, over the brokers' 60 s percentile window.

Label values are bounded by the view: at most ``api.cluster.MAX_VIEW_ENTRIES`` commands,
pools and collapsers, and 64 brokers.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from api.cluster import BREAKER_SEVERITY
from shared.logging import get_logger
from shared.metrics_schema import PERCENTILE_KEYS

log = get_logger("api.prometheus_metrics")

#: The path this app answers.
METRICS_PATH = "/metrics"

#: Pool fields exposed as gauges: name suffix -> (view field, help).
POOL_GAUGES: dict[str, tuple[str, str]] = {
    "workers": ("workers", "Worker processes registered (not draining)"),
    "slots": ("slots", "Call slots of the registered workers"),
    "busy": ("busy", "Slots running a call now"),
    "queued": ("queued", "Calls waiting in the pool's queue now"),
    "queue_size": ("queue_size", "Queue capacity (waiting calls beyond busy slots)"),
    "largest_slots": ("largest_slots", "High-water mark of slots"),
    "executed_rolling": ("rolling_executed", "Calls finished in the rolling window"),
    "max_busy_rolling": ("rolling_max_busy", "Most busy slots in the rolling window"),
    "rejected_rolling": ("rolling_rejected", "THREAD_POOL_REJECTED calls in the rolling window"),
}
#: Pool counts since start: counter name -> (view field, help).
POOL_COUNTERS: dict[str, tuple[str, str]] = {
    "completed_calls": ("completed_total", "Calls workers finished, summed over every broker this front has heard"),
    "submitted_calls": ("submitted_total", "Calls sent to workers, summed over every broker this front has heard"),
}

StartResponse = Callable[..., Any]


def quantile_label(percentile_key: str) -> str:
    """Hystrix's percentile key ("99.5") as a Prometheus quantile ("0.995")."""
    return f"{float(percentile_key) / 100:g}"


class ViewCollector:
    """Yields the metric families of the feed's current view at each scrape."""

    def __init__(self, feed: Any) -> None:
        self.feed = feed

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the registry is this collector's alone

    def collect(self) -> Iterator[Metric]:
        view = self.feed.view()
        yield from _broker_families(view)
        yield from _command_families(view["commands"])
        yield from _pool_families(view["pools"])
        yield from _collapser_families(view["collapsers"])


def _broker_families(view: Mapping[str, Any]) -> Iterator[Metric]:
    yield GaugeMetricFamily("seawall_hosts_reporting", "Brokers whose metrics are in this view",
                            value=len(view["brokers"]))
    age = GaugeMetricFamily("seawall_broker_snapshot_age_seconds", "Seconds since the broker's last snapshot",
                            labels=["broker", "host"])
    for broker_id, broker in view["brokers"].items():
        age.add_metric([broker_id, broker["host"]], broker["age_s"])
    yield age


#: Command fields exposed as gauges labelled by command and pool: name suffix -> (view field, help).
COMMAND_GAUGES: dict[str, tuple[str, str]] = {
    "requests_rolling": ("request_count", "Calls the breaker counts in the rolling window"),
    "errors_rolling": ("error_count", "Failed calls the breaker counts in the rolling window"),
    "concurrent": ("concurrent", "Calls running in workers now"),
    "max_concurrent_rolling": ("max_concurrent", "Most calls running at once in the rolling window"),
    "hosts": ("hosts", "Brokers reporting the command"),
}
_COMMAND_LABELS = ["command", "pool"]


def _command_families(commands: Mapping[str, Any]) -> Iterator[Metric]:
    yield from _command_gauges(commands)
    yield from _breaker_families(commands)
    for kind, text in (("execute", "Execution (run in a worker)"), ("total", "Total (received at the broker "
                                                                             "to answered)")):
        yield from _latency_families(commands, kind, text)


def _command_gauges(commands: Mapping[str, Any]) -> Iterator[Metric]:
    events = GaugeMetricFamily("seawall_command_events_rolling", "Events of each type in the rolling window",
                               labels=[*_COMMAND_LABELS, "event"])
    totals = CounterMetricFamily("seawall_command_events", "Events of each type since start, summed over every "
                                 "broker this front has heard", labels=[*_COMMAND_LABELS, "event"])
    gauges = {name: GaugeMetricFamily(f"seawall_command_{name}", text, labels=_COMMAND_LABELS)
              for name, (_, text) in COMMAND_GAUGES.items()}
    for key, command in commands.items():
        for event, count in command["events"].items():
            events.add_metric([key, command["pool"], event], count)
        for event, count in command["events_total"].items():
            totals.add_metric([key, command["pool"], event], count)
        for name, (field, _) in COMMAND_GAUGES.items():
            gauges[name].add_metric([key, command["pool"]], command[field])
    yield from (events, totals, *gauges.values())


def _breaker_families(commands: Mapping[str, Any]) -> Iterator[Metric]:
    state = GaugeMetricFamily("seawall_breaker_state", "1 for the breaker's state (the most severe any broker "
                              "reports), 0 for the others", labels=["command", "state"])
    brokers_in = GaugeMetricFamily("seawall_breaker_brokers", "Brokers whose breaker for the command is in "
                                   "each state", labels=["command", "state"])
    error_pct = GaugeMetricFamily("seawall_breaker_error_pct", "Error percentage the breaker sees",
                                  labels=["command"])
    for key, command in commands.items():
        for breaker_state in BREAKER_SEVERITY:
            state.add_metric([key, breaker_state], 1.0 if command["breaker"] == breaker_state else 0.0)
            brokers_in.add_metric([key, breaker_state], command["breakers"][breaker_state])
        error_pct.add_metric([key], command["error_pct"])
    yield from (state, brokers_in, error_pct)


def _latency_families(commands: Mapping[str, Any], kind: str, text: str) -> Iterator[Metric]:
    """``kind`` is execute or total: the view's ``latency_execute`` / ``latency_total``, ms -> s."""
    points = GaugeMetricFamily(f"seawall_command_latency_{kind}_seconds",
                               f"{text} latency percentiles over the brokers' percentile window",
                               labels=[*_COMMAND_LABELS, "quantile"])
    mean = GaugeMetricFamily(f"seawall_command_latency_{kind}_mean_seconds", f"Mean {kind} latency",
                             labels=_COMMAND_LABELS)
    for key, command in commands.items():
        distribution = command[f"latency_{kind}"]
        mean.add_metric([key, command["pool"]], distribution["mean"] / 1000)
        for point in PERCENTILE_KEYS:
            points.add_metric([key, command["pool"], quantile_label(point)], distribution[point] / 1000)
    yield from (points, mean)


def _pool_families(pools: Mapping[str, Any]) -> Iterator[Metric]:
    gauges = {name: GaugeMetricFamily(f"seawall_pool_{name}", text, labels=["pool"])
              for name, (_, text) in POOL_GAUGES.items()}
    counters = {name: CounterMetricFamily(f"seawall_pool_{name}", text, labels=["pool"])
                for name, (_, text) in POOL_COUNTERS.items()}
    hosts = GaugeMetricFamily("seawall_pool_hosts", "Brokers reporting the pool", labels=["pool"])
    for name, pool in pools.items():
        for metric, (field, _) in POOL_GAUGES.items():
            gauges[metric].add_metric([name], pool[field])
        for metric, (field, _) in POOL_COUNTERS.items():
            counters[metric].add_metric([name], pool[field])
        hosts.add_metric([name], pool["hosts"])
    yield from (*gauges.values(), *counters.values(), hosts)


def _collapser_families(collapsers: Mapping[str, Any]) -> Iterator[Metric]:
    batches = GaugeMetricFamily("seawall_collapser_batches_rolling", "Batches run in the rolling window",
                                labels=["command"])
    batched = GaugeMetricFamily("seawall_collapser_requests_batched_rolling",
                                "Calls run in batches in the rolling window", labels=["command"])
    size = GaugeMetricFamily("seawall_collapser_batch_size", "Batch size percentiles",
                             labels=["command", "quantile"])
    size_mean = GaugeMetricFamily("seawall_collapser_batch_size_mean", "Mean batch size", labels=["command"])
    for key, collapser in collapsers.items():
        batches.add_metric([key], collapser["rolling_batches"])
        batched.add_metric([key], collapser["rolling_requests_batched"])
        size_mean.add_metric([key], collapser["batch_size"]["mean"])
        for point in PERCENTILE_KEYS[1:]:
            size.add_metric([key, quantile_label(point)], collapser["batch_size"][point])
    yield from (batches, batched, size, size_mean)


def registry_for(feed: Any) -> CollectorRegistry:
    """A registry of its own holding only the view's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ViewCollector(feed))
    return registry


def metrics_app(feed: Any) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app for ``GET /metrics``."""
    registry = registry_for(feed)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            return _text(start_response, "404 Not Found", f"no such path {environ.get('PATH_INFO')}; "
                                                          f"the metrics are at {METRICS_PATH}")
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _text(start_response, "405 Method Not Allowed", f"only GET {METRICS_PATH}",
                         [("Allow", "GET, HEAD")])
        try:
            body = generate_latest(registry)
        except Exception as exc:  # noqa: BLE001 - the scrape fails, the front serves on
            log.error("metrics_scrape_failed", error=f"{type(exc).__name__}: {exc}")
            return _text(start_response, "500 Internal Server Error", f"metrics unavailable: {type(exc).__name__}")
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))])
        return [] if method == "HEAD" else [body]

    return app


def _text(start_response: StartResponse, status: str, text: str,
          extra_headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            *(extra_headers or [])])
    return [body]
