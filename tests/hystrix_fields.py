"""Hystrix's stream messages as the spec: every field, in emitted order, with its JSON type.

From /work/shared/reference/hystrix.md §4.2-4.4 (``SerialHystrixDashboardData``); the
tests of ``/hystrix.stream`` check seawall's messages against these lists.
"""

from __future__ import annotations

PERCENTILES = ["0", "25", "50", "75", "90", "95", "99", "99.5", "100"]
BATCH_PERCENTILES = PERCENTILES[1:]  # batchSize has no "0"

COMMAND_FIELDS: list[tuple[str, type | tuple[type, ...]]] = [
    ("type", str), ("name", str), ("group", str), ("currentTime", int), ("isCircuitBreakerOpen", bool),
    ("errorPercentage", int), ("errorCount", int), ("requestCount", int),
    ("rollingCountBadRequests", int), ("rollingCountCollapsedRequests", int), ("rollingCountEmit", int),
    ("rollingCountExceptionsThrown", int), ("rollingCountFailure", int), ("rollingCountFallbackEmit", int),
    ("rollingCountFallbackFailure", int), ("rollingCountFallbackMissing", int),
    ("rollingCountFallbackRejection", int), ("rollingCountFallbackSuccess", int),
    ("rollingCountResponsesFromCache", int), ("rollingCountSemaphoreRejected", int),
    ("rollingCountShortCircuited", int), ("rollingCountSuccess", int), ("rollingCountThreadPoolRejected", int),
    ("rollingCountTimeout", int), ("currentConcurrentExecutionCount", int),
    ("rollingMaxConcurrentExecutionCount", int), ("latencyExecute_mean", int), ("latencyExecute", dict),
    ("latencyTotal_mean", int), ("latencyTotal", dict),
    ("propertyValue_circuitBreakerRequestVolumeThreshold", int),
    ("propertyValue_circuitBreakerSleepWindowInMilliseconds", int),
    ("propertyValue_circuitBreakerErrorThresholdPercentage", int),
    ("propertyValue_circuitBreakerForceOpen", bool), ("propertyValue_circuitBreakerForceClosed", bool),
    ("propertyValue_circuitBreakerEnabled", bool), ("propertyValue_executionIsolationStrategy", str),
    ("propertyValue_executionIsolationThreadTimeoutInMilliseconds", int),
    ("propertyValue_executionTimeoutInMilliseconds", int),
    ("propertyValue_executionIsolationThreadInterruptOnTimeout", bool),
    ("propertyValue_executionIsolationThreadPoolKeyOverride", type(None)),
    ("propertyValue_executionIsolationSemaphoreMaxConcurrentRequests", int),
    ("propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests", int),
    ("propertyValue_metricsRollingStatisticalWindowInMilliseconds", int),
    ("propertyValue_requestCacheEnabled", bool), ("propertyValue_requestLogEnabled", bool),
    ("reportingHosts", int), ("threadPool", str),
]

THREAD_POOL_FIELDS: list[tuple[str, type | tuple[type, ...]]] = [
    ("type", str), ("name", str), ("currentTime", int), ("currentActiveCount", int),
    ("currentCompletedTaskCount", int), ("currentCorePoolSize", int), ("currentLargestPoolSize", int),
    ("currentMaximumPoolSize", int), ("currentPoolSize", int), ("currentQueueSize", int),
    ("currentTaskCount", int), ("rollingCountThreadsExecuted", int), ("rollingMaxActiveThreads", int),
    ("rollingCountCommandRejections", int), ("propertyValue_queueSizeRejectionThreshold", int),
    ("propertyValue_metricsRollingStatisticalWindowInMilliseconds", int), ("reportingHosts", int),
]

COLLAPSER_FIELDS: list[tuple[str, type | tuple[type, ...]]] = [
    ("type", str), ("name", str), ("currentTime", int), ("rollingCountRequestsBatched", int),
    ("rollingCountBatches", int), ("rollingCountResponsesFromCache", int), ("batchSize_mean", int),
    ("batchSize", dict), ("propertyValue_requestCacheEnabled", bool), ("propertyValue_maxRequestsInBatch", int),
    ("propertyValue_timerDelayInMilliseconds", int), ("reportingHosts", int),
]

FIELDS_BY_TYPE = {"HystrixCommand": COMMAND_FIELDS, "HystrixThreadPool": THREAD_POOL_FIELDS,
                  "HystrixCollapser": COLLAPSER_FIELDS}
PERCENTILE_FIELDS = {"latencyExecute": PERCENTILES, "latencyTotal": PERCENTILES, "batchSize": BATCH_PERCENTILES}


def check_message(message: dict) -> None:
    """Assert ``message`` has exactly its type's fields, in order, each of the right JSON type."""
    spec = FIELDS_BY_TYPE[message["type"]]
    assert list(message) == [name for name, _ in spec], f"{message['type']} fields differ from Hystrix's"
    for name, expected in spec:
        value = message[name]
        if expected is int:  # a JSON number that is an integer, never a bool
            assert type(value) is int, f"{message['type']}.{name} = {value!r} is not an integer"
        else:
            assert type(value) is expected, f"{message['type']}.{name} = {value!r} is not {expected}"
        if name in PERCENTILE_FIELDS:
            assert list(value) == PERCENTILE_FIELDS[name], f"{name} keys"
            assert all(type(point) is int for point in value.values()), f"{name} values must be integers"
