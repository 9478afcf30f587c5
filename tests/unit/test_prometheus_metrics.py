"""``/metrics``: the cluster view scraped over real HTTP and read with Prometheus's own parser."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Any, Iterator
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from prometheus_client import REGISTRY, CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from api.cluster import aggregate
from api.prometheus_metrics import metrics_app, quantile_label, registry_for
from metrics_samples import collapser, command, latency, pool, snapshot


class FakeFeed:
    def __init__(self, view: dict[str, Any]) -> None:
        self.current = view

    def view(self) -> dict[str, Any]:
        return self.current


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


VIEW = aggregate([
    snapshot("a:1", commands={"Echo": command(events={"SUCCESS": 7, "FAILURE": 3}, breaker="HALF_OPEN",
                                              latency_ms=latency(20.0, p99=150.0), concurrent=2)},
             pools={"sample": pool(workers=2, slots=4, busy=1, queued=1, submitted_total=30, completed_total=28)},
             collapsers={"GetItem": collapser(batches=2, batched=9, size=4.5)}),
    snapshot("b:2", commands={"Echo": command(events={"SUCCESS": 5})},
             pools={"sample": pool(workers=1, slots=2, submitted_total=10, completed_total=10)}),
])


@pytest.fixture(scope="module")
def http_server() -> Iterator[tuple[str, FakeFeed]]:
    """One real HTTP server (wsgiref, in a thread) for the module: shutting one down takes 0.5 s."""
    feed = FakeFeed(VIEW)
    httpd = make_server("127.0.0.1", 0, metrics_app(feed), handler_class=QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", feed
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def server(http_server) -> tuple[str, FakeFeed]:
    http_server[1].current = VIEW
    return http_server


def scrape(base: str) -> dict[str, Any]:
    """Metric families by name, from a real GET /metrics."""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family: Any, **labels: str) -> list[Any]:
    return [s for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]


def value(family: Any, **labels: str) -> float:
    (sample,) = samples(family, **labels)
    return sample.value


def test_a_scrape_parses_and_says_how_many_brokers_report(server):
    families = scrape(server[0])
    assert value(families["seawall_hosts_reporting"]) == 2
    assert {s.labels["broker"] for s in families["seawall_broker_snapshot_age_seconds"].samples} == {"a:1", "b:2"}


def test_command_events_are_rolling_gauges_labelled_by_command_pool_and_event(server):
    events = scrape(server[0])["seawall_command_events_rolling"]
    assert events.type == "gauge"
    assert value(events, command="Echo", pool="sample", event="SUCCESS") == 12
    assert value(events, command="Echo", event="FAILURE") == 3
    assert len(samples(events, command="Echo")) == 14  # every event type, zeros included


def test_command_events_since_start_are_counters_summed_over_brokers(server):
    events = scrape(server[0])["seawall_command_events"]
    assert events.type == "counter"
    assert value(events, command="Echo", pool="sample", event="SUCCESS") == 12
    assert [s.name for s in samples(events, command="Echo", event="FAILURE")] == ["seawall_command_events_total"]


def test_the_breaker_state_is_one_gauge_per_state_with_its_error_percentage(server):
    families = scrape(server[0])
    state = families["seawall_breaker_state"]
    assert {s.labels["state"]: s.value for s in samples(state, command="Echo")} == {
        "CLOSED": 0.0, "HALF_OPEN": 1.0, "OPEN": 0.0}
    assert value(families["seawall_breaker_brokers"], command="Echo", state="CLOSED") == 1
    assert value(families["seawall_breaker_error_pct"], command="Echo") == 20.0  # 3 of 15


def test_latency_is_a_gauge_per_quantile_in_seconds(server):
    execute = scrape(server[0])["seawall_command_latency_execute_seconds"]
    quantiles = [s.labels["quantile"] for s in samples(execute, command="Echo")]
    assert quantiles == ["0", "0.25", "0.5", "0.75", "0.9", "0.95", "0.99", "0.995", "1"]
    assert value(execute, command="Echo", quantile="0.99") == 0.15
    assert quantile_label("99.5") == "0.995"


def test_pools_have_load_gauges_and_counters_since_start(server):
    families = scrape(server[0])
    assert value(families["seawall_pool_slots"], pool="sample") == 6
    assert value(families["seawall_pool_workers"], pool="sample") == 3
    assert value(families["seawall_pool_queued"], pool="sample") == 1
    assert value(families["seawall_pool_queue_size"], pool="sample") == 10
    completed = families["seawall_pool_completed_calls"]
    assert completed.type == "counter"
    assert value(completed, pool="sample") == 38


def test_collapsers_have_batch_counts_and_sizes(server):
    families = scrape(server[0])
    assert value(families["seawall_collapser_requests_batched_rolling"], command="GetItem") == 9
    assert value(families["seawall_collapser_batch_size"], command="GetItem", quantile="0.5") == 4.5


def test_each_scrape_reads_the_current_view(server):
    base, feed = server
    feed.current = aggregate([])
    families = scrape(base)
    assert value(families["seawall_hosts_reporting"]) == 0
    assert not families["seawall_command_events_rolling"].samples


def test_other_paths_are_404(server):
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(server[0] + "/metrics/extra", timeout=5)
    assert error.value.code == 404


def test_the_global_registry_is_left_alone():
    before = set(REGISTRY._names_to_collectors)
    registry_for(FakeFeed(VIEW))
    assert set(REGISTRY._names_to_collectors) == before
