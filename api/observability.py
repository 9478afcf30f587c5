"""What a front serves besides endpoints: the metrics feed and the apps that show it.

``/hystrix.stream`` (Hystrix's stream format), ``/metrics`` (Prometheus) and the
dashboard's paths, all over one :class:`~api.metrics_feed.MetricsFeed`. The front routes
a request here before it looks for an endpoint, so no endpoint module can shadow them.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from api.access import require_token
from api.dashboard import dashboard_apps
from api.hystrix_stream import HystrixStream
from api.metrics_feed import MetricsFeed
from api.prometheus_metrics import METRICS_PATH, metrics_app
from shared.config import RUN_PLACEHOLDER, Config
from shared.security import secure_client

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def metrics_sources(config: Config) -> list[str]:
    """``[front] metrics_sources`` (``RUN`` as in ``[endpoints]``), else the brokers this
    front calls: its own and each ``[brokers.NAME]``."""
    sources = config.front_setting("metrics_sources")
    if not sources:
        return [config.endpoints["events"], *(link["events"] for link in config.brokers.values())]
    return [source.replace(f"://{RUN_PLACEHOLDER}/", f"://{config.run_dir}/", 1) for source in sources]


def make_feed(config: Config) -> MetricsFeed:
    """The feed, with the front's CURVE keys for ``tcp://`` sources (``shared/security.py``);
    a ``[brokers.NAME]`` source is trusted with that broker's own key."""
    server_key_by_endpoint = {link["events"]: link.get("key") for link in config.brokers.values()}
    return MetricsFeed(metrics_sources(config), secure=lambda sock, endpoint: secure_client(
        sock, config, "front", endpoint, server_key_by_endpoint.get(endpoint)))


#: Paths that serve no data about the system: open even with an access token set.
OPEN_PATHS = frozenset({"/dashboard", "/dashboard/static/"})


def observability_apps(feed: MetricsFeed, access_token: str | None = None) -> dict[str, WSGIApp]:
    """Path (prefix) -> WSGI app, for :func:`route`; with ``access_token``, every app that
    serves data answers only requests carrying it (``api/access.py``)."""
    apps: dict[str, WSGIApp] = {
        "/hystrix.stream": HystrixStream(feed),
        METRICS_PATH: metrics_app(feed),
        **dashboard_apps(feed),
    }
    if access_token:
        apps = {path: app if path in OPEN_PATHS else require_token(app, access_token) for path, app in apps.items()}
    return apps


def route(apps: Mapping[str, WSGIApp], path: str) -> WSGIApp | None:
    """The app of the longest key that is ``path`` or a directory above it; None if none.

    ``/metrics`` takes ``/metrics`` and ``/metrics/...``, not ``/metricsfoo``; a key ending
    in ``/`` takes everything under it.
    """
    best: str | None = None
    for prefix in apps:
        directory = prefix if prefix.endswith("/") else prefix + "/"
        if (path == prefix or path.startswith(directory)) and (best is None or len(prefix) > len(best)):
            best = prefix
    return apps[best] if best is not None else None
