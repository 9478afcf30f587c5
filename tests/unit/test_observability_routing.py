"""Which paths a front hands to the observability apps, and where the feed listens."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.observability import metrics_sources, route
from shared.config import Config, ConfigError, parse

APPS = {"/hystrix.stream": "stream", "/metrics": "metrics", "/dashboard": "page",
        "/dashboard/static/": "static", "/dashboard.json": "json"}


@pytest.mark.parametrize(("path", "app"), [
    ("/hystrix.stream", "stream"), ("/metrics", "metrics"), ("/metrics/extra", "metrics"),
    ("/dashboard", "page"), ("/dashboard/", "page"), ("/dashboard/static/dashboard.js", "static"),
    ("/dashboard.json", "json"), ("/metricsfoo", None), ("/ps3/home", None), ("/", None),
])
def test_the_longest_matching_path_or_directory_wins(path, app):
    assert route(APPS, path) == app


def config(front: dict) -> Config:
    return parse({"front": front}, Path("/srv/seawall"))


def test_the_feed_listens_to_its_own_broker_by_default():
    assert metrics_sources(config({})) == ["ipc:///srv/seawall/run/events"]


def test_metrics_sources_may_name_other_brokers_with_run_as_in_endpoints():
    sources = metrics_sources(config({"metrics_sources": ["ipc://RUN/events", "tcp://10.0.0.2:5557"]}))
    assert sources == ["ipc:///srv/seawall/run/events", "tcp://10.0.0.2:5557"]


@pytest.mark.parametrize(("value", "problem"), [
    ("ipc://RUN/events", "expected a list of 1 to 64 ZeroMQ endpoints"),
    ([], "expected a list of 1 to 64"),
    (["ipc://RUN/events"] * 65, "expected a list of 1 to 64"),
    (["ipc://RUN/events", "http://broker:80"], "item 1: expected a ZeroMQ endpoint"),
    (["tcp://a:1", "tcp://a:1"], "expected distinct endpoints"),
])
def test_bad_metrics_sources_are_an_error_naming_the_key(value, problem):
    with pytest.raises(ConfigError, match=problem) as error:
        config({"metrics_sources": value})
    assert error.value.key == "front.metrics_sources"
