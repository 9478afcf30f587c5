"""``seawall load``: bounded open-loop HTTP load on loopback, a live progress line, a final report.

Requests start at a steady rate whatever the answers do (open loop), each in its own
greenlet with its own timeout, at most ``max_in_flight`` at once; a request that would
exceed the cap is dropped by the generator, not sent. Only loopback targets are allowed.
The HTTP client is a small GET over ``gevent.socket``: no monkey-patching, no dependency.

Failures are not left out of the figures: a timed-out request's latency is its time until
it was given up (at least the timeout) in the percentiles, and the answered rate is
reported beside the sent rate. Connection errors, which fail at once, are counted but
have no latency (one would flatter the percentiles).
"""

from __future__ import annotations

import ipaddress
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence, TextIO
from urllib.parse import urlsplit

import gevent
from gevent import socket
from gevent.pool import Group

from shared.rolling import RollingPercentiles

#: Highest request rate asked for, per second.
MAX_RPS = 10_000
#: Longest run, in seconds.
MAX_DURATION_S = 3_600.0
#: Longest per-request timeout, in seconds.
MAX_TIMEOUT_S = 300.0
DEFAULT_TIMEOUT_S = 10.0
#: Requests in flight at once; more are dropped by the generator (each holds a socket).
DEFAULT_MAX_IN_FLIGHT = 1_000
MAX_IN_FLIGHT_LIMIT = 10_000
#: How often the progress line is rewritten.
PROGRESS_INTERVAL_S = 1.0
#: Largest status line plus headers read before the response counts as malformed.
MAX_RESPONSE_HEAD_BYTES = 64 * 1024
READ_CHUNK_BYTES = 64 * 1024
#: Percentiles in the final report (the progress line shows 50 and 99).
REPORT_PERCENTILES = (50.0, 90.0, 99.0)
#: Exit code when a target or limit is refused (as argparse's usage errors).
EXIT_REFUSED = 2
#: Killed after this much more than the timeout: the per-request timeout should have ended them.
_FINAL_WAIT_GRACE_S = 1.0
#: Latency bins kept for the whole run: one bucket whose window outlasts any allowed run.
_WHOLE_RUN_WINDOW_S = 2 * (MAX_DURATION_S + MAX_TIMEOUT_S)


class LoadRefused(ValueError):
    """A target or a limit the generator will not run with; nothing was sent."""

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class BadResponse(Exception):
    """The server answered something that is not an HTTP/1.x response."""


@dataclass(frozen=True)
class Target:
    """A loopback URL, ready to connect to and send."""

    url: str
    family: int
    address: tuple[str, int]
    request: bytes


@dataclass(frozen=True)
class LoadPlan:
    targets: tuple[Target, ...]
    rps: float
    duration_s: float
    timeout_s: float
    max_in_flight: int


def parse_target(url: str) -> Target:
    """``url`` as a :class:`Target`; :class:`LoadRefused` unless http:// to a loopback host."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise LoadRefused(f"{url}: only http:// URLs are supported", url)
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise LoadRefused(f"{url}: bad port", url) from exc
    family, host = _loopback_host(parts.hostname or "", url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.netloc.rpartition("@")[2]
    request = (f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: seawall-load\r\n"
               "Accept: */*\r\nConnection: close\r\n\r\n").encode("latin-1")
    return Target(url, family, (host, port), request)


def _loopback_host(host: str, url: str) -> tuple[int, str]:
    """The socket family and address of a loopback host; no name is ever resolved."""
    if host == "localhost":
        return socket.AF_INET, "127.0.0.1"  # fixed, not looked up: /etc/hosts could point it elsewhere
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise LoadRefused(f"{url}: refused, not a loopback host (only 127.0.0.0/8, ::1 and localhost)", url)
    return (socket.AF_INET6 if address.version == 6 else socket.AF_INET), str(address)


def plan(urls: Sequence[str], rps: float, duration_s: float, timeout_s: float = DEFAULT_TIMEOUT_S,
         max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> LoadPlan:
    """A checked plan; :class:`LoadRefused` for any non-loopback URL or limit out of bounds."""
    if not urls:
        raise LoadRefused("no URL to load")
    targets = tuple(parse_target(url) for url in urls)
    for name, value, limit in (("--rps", rps, MAX_RPS), ("--duration", duration_s, MAX_DURATION_S),
                               ("--timeout", timeout_s, MAX_TIMEOUT_S),
                               ("--max-in-flight", max_in_flight, MAX_IN_FLIGHT_LIMIT)):
        if not 0 < value <= limit:
            raise LoadRefused(f"{name} must be above 0 and at most {limit:g}, got {value:g}")
    return LoadPlan(targets, rps, duration_s, timeout_s, max_in_flight)


def http_get(target: Target, keep_body_bytes: int = 0) -> tuple[int, bytes]:
    """One GET with ``Connection: close``, once the whole body has arrived: its status code
    and the first ``keep_body_bytes`` of its body."""
    sock = socket.socket(target.family, socket.SOCK_STREAM)
    try:
        sock.connect(target.address)
        sock.sendall(target.request)
        return _read_response(sock, keep_body_bytes)
    finally:
        sock.close()


def _read_response(sock: socket.socket, keep_body_bytes: int) -> tuple[int, bytes]:
    received = b""
    while b"\r\n\r\n" not in received:
        if len(received) > MAX_RESPONSE_HEAD_BYTES:
            raise BadResponse(f"no end of headers in {MAX_RESPONSE_HEAD_BYTES} bytes")
        chunk = sock.recv(READ_CHUNK_BYTES)
        if not chunk:
            raise BadResponse("connection closed before the end of the headers")
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.split(b"\r\n")
    status = _status_code(status_line)
    content_length = _content_length(header_lines)
    kept = [body[:keep_body_bytes]]
    body_bytes = len(body)
    while content_length is None or body_bytes < content_length:
        chunk = sock.recv(READ_CHUNK_BYTES)
        if not chunk:
            if content_length is None:
                break  # no length (chunked or none): the server closes after the body
            raise BadResponse(f"connection closed after {body_bytes} of {content_length} body bytes")
        if body_bytes < keep_body_bytes:
            kept.append(chunk[:keep_body_bytes - body_bytes])
        body_bytes += len(chunk)
    return status, b"".join(kept)


def _status_code(status_line: bytes) -> int:
    version, _, rest = status_line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or not code.isdigit():
        raise BadResponse(f"bad status line {status_line[:80]!r}")
    return int(code)


def _content_length(header_lines: list[bytes]) -> int | None:
    for line in header_lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            if not value.strip().isdigit():
                raise BadResponse(f"bad Content-Length {value.strip()[:40]!r}")
            return int(value)
    return None


class UrlStats:
    """What became of the requests to one URL (or to all of them)."""

    def __init__(self) -> None:
        self.sent = 0
        self.answered = 0
        self.timed_out = 0
        self.connection_errors = 0
        self.dropped = 0
        self.status_counts: Counter[int] = Counter()
        #: its 100th percentile is the exact greatest latency: no max of its own is kept
        self.latency = RollingPercentiles(window_s=_WHOLE_RUN_WINDOW_S, buckets=1)

    def record_answer(self, status: int, latency_ms: float) -> None:
        self.answered += 1
        self.status_counts[status] += 1
        self.latency.add(latency_ms)

    def record_timeout(self, latency_ms: float) -> None:
        """A request given up after ``latency_ms``: in the percentiles, or they would show
        only the requests fast enough to be answered."""
        self.timed_out += 1
        self.latency.add(latency_ms)

    def summary(self, sending_s: float) -> dict[str, Any]:
        """Counts, latency of the answered and timed-out requests (None for each figure if
        there was none), and per second over the sending time: sent (``achieved_rps``, the
        generator's rate) and answered (``answered_rps``, what the server kept up with)."""
        latency_ms: dict[str, float | None]
        if self.latency.count:
            percentiles = self.latency.percentiles((*REPORT_PERCENTILES, 100.0))
            latency_ms = {f"p{point:g}": round(percentiles[point], 3) for point in REPORT_PERCENTILES}
            latency_ms["max"] = round(percentiles[100.0], 3)
        else:  # not 0.0: nothing was measured
            latency_ms = {**{f"p{point:g}": None for point in REPORT_PERCENTILES}, "max": None}
        return {"sent": self.sent, "answered": self.answered, "timed_out": self.timed_out,
                "connection_errors": self.connection_errors, "dropped": self.dropped,
                "status_counts": {str(code): count for code, count in sorted(self.status_counts.items())},
                "latency_ms": latency_ms,
                "achieved_rps": _per_second(self.sent, sending_s),
                "answered_rps": _per_second(self.answered, sending_s)}


def _per_second(count: int, sending_s: float) -> float:
    return round(count / sending_s, 2) if sending_s > 0 else 0.0


class LoadRun:
    """One run of a plan: the schedule, the requests in flight, and what became of them."""

    def __init__(self, load_plan: LoadPlan) -> None:
        self.plan = load_plan
        self.stats_by_url = {target.url: UrlStats() for target in load_plan.targets}
        self.total = UrlStats()
        self.in_flight = Group()
        self.started_s = time.monotonic()
        self.sending_s = 0.0

    def run(self, progress: TextIO | None = None) -> dict[str, Any]:
        """Send for the plan's duration, wait for the stragglers; the report as a dict."""
        self.started_s = time.monotonic()
        reporter = gevent.spawn(self._report_progress, progress) if progress is not None else None
        try:
            self._send_on_schedule()
            self.sending_s = time.monotonic() - self.started_s
            self._wait_for_in_flight()
        finally:
            if reporter is not None:
                reporter.kill()
            if progress is not None:
                _write_progress(progress, self.progress_line(), final=True)
        return self.report()

    def _send_on_schedule(self) -> None:
        """Start request i at ``started_s + i / rps``, catching up at once if the loop fell behind."""
        rps, targets = self.plan.rps, self.plan.targets
        scheduled = int(rps * self.plan.duration_s)
        started = 0
        while started < scheduled:
            due = min(scheduled, int((time.monotonic() - self.started_s) * rps) + 1)
            for index in range(started, due):
                self._start(targets[index % len(targets)], self.started_s + index / rps)
            started = max(started, due)
            gevent.sleep(max(0.0, self.started_s + started / rps - time.monotonic()))

    def _start(self, target: Target, scheduled_s: float) -> None:
        stats = self.stats_by_url[target.url]
        if len(self.in_flight) >= self.plan.max_in_flight:
            stats.dropped += 1
            self.total.dropped += 1
            return
        stats.sent += 1
        self.total.sent += 1
        self.in_flight.spawn(self._request, target, stats, scheduled_s)

    #: Body bytes kept for :meth:`answered` (0: bodies are read and dropped).
    keep_body_bytes = 0

    def _request(self, target: Target, stats: UrlStats, scheduled_s: float) -> None:
        # Latency counts from the scheduled start, so a generator that lags cannot hide it.
        counted = (stats, self.total)
        try:
            with gevent.Timeout(self.plan.timeout_s):
                status, body = http_get(target, self.keep_body_bytes)
        except (gevent.Timeout, gevent.GreenletExit) as exc:
            # From the scheduled start too; at least the timeout, as a request killed at the end
            # of the run (GreenletExit) was given up on after it.
            latency_ms = max(time.monotonic() - scheduled_s, self.plan.timeout_s) * 1000
            for each in counted:
                each.record_timeout(latency_ms)
            self.failed(scheduled_s, "timed_out")
            if isinstance(exc, gevent.GreenletExit):
                raise
            return
        except (OSError, BadResponse):
            for each in counted:
                each.connection_errors += 1
            self.failed(scheduled_s, "connection_error")
            return
        latency_ms = (time.monotonic() - scheduled_s) * 1000
        for each in counted:
            each.record_answer(status, latency_ms)
        self.answered(scheduled_s, status, body, latency_ms)

    def answered(self, scheduled_s: float, status: int, body: bytes, latency_ms: float) -> None:
        """A hook for runs that keep more than counts (each request's outcome, its body)."""

    def failed(self, scheduled_s: float, outcome: str) -> None:
        """A hook: a request ``"timed_out"`` or ended in a ``"connection_error"``."""

    def _wait_for_in_flight(self) -> None:
        self.in_flight.join(timeout=self.plan.timeout_s + _FINAL_WAIT_GRACE_S)
        self.in_flight.kill(timeout=_FINAL_WAIT_GRACE_S)  # counted as timed out

    def _report_progress(self, stream: TextIO) -> None:
        while True:
            gevent.sleep(PROGRESS_INTERVAL_S)
            _write_progress(stream, self.progress_line())

    def progress_line(self) -> str:
        elapsed_s = time.monotonic() - self.started_s
        sending_s = self.sending_s or min(elapsed_s, self.plan.duration_s)
        total = self.total
        percentiles = total.latency.percentiles((50.0, 99.0))
        latency = (f"p50 {percentiles[50.0]:.1f} ms  p99 {percentiles[99.0]:.1f} ms" if total.latency.count
                   else "p50 -  p99 -")  # nothing measured yet: not 0.0 ms
        statuses = " ".join(f"{code}:{count}" for code, count in sorted(total.status_counts.items())) or "-"
        return (f"{elapsed_s:5.1f} s  sent {total.sent}  answered {total.answered}  "
                f"timed out {total.timed_out}  in flight {len(self.in_flight)}  dropped {total.dropped}  "
                f"sent/s {_per_second(total.sent, sending_s):.1f}  "
                f"answered/s {_per_second(total.answered, sending_s):.1f}  status {statuses}  {latency}")

    def report(self) -> dict[str, Any]:
        return {"rps_asked": self.plan.rps, "duration_s": self.plan.duration_s,
                "timeout_s": self.plan.timeout_s, "max_in_flight": self.plan.max_in_flight,
                "sending_s": round(self.sending_s, 3),
                "elapsed_s": round(time.monotonic() - self.started_s, 3),
                "urls": {url: stats.summary(self.sending_s) for url, stats in self.stats_by_url.items()},
                "total": self.total.summary(self.sending_s)}


def _write_progress(stream: TextIO, line: str, final: bool = False) -> None:
    """Rewrite one line on a terminal (``\\r``, clear to end); a line each time otherwise."""
    if stream.isatty():
        stream.write(f"\r{line}\x1b[K" + ("\n" if final else ""))
    else:
        stream.write(line + "\n")
    stream.flush()


def run(load_plan: LoadPlan, progress: TextIO | None = None) -> dict[str, Any]:
    """Run ``load_plan``; ``progress``, if given, gets the progress line every second."""
    return LoadRun(load_plan).run(progress)


def format_report(report: dict[str, Any]) -> str:
    header = (f"{'URL':<40} {'SENT':>7} {'ANSWERED':>8} {'TIMEOUT':>7} {'CONNERR':>7} {'DROPPED':>7} "
              f"{'SENT/S':>8} {'ANSWER/S':>8} {'P50MS':>8} {'P90MS':>8} {'P99MS':>8} {'MAXMS':>8}  STATUS")
    rows = [*report["urls"].items(), ("total", report["total"])]
    lines = [f"{report['rps_asked']:g} rps asked for {report['duration_s']:g} s; sent for "
             f"{report['sending_s']:.2f} s, done after {report['elapsed_s']:.2f} s",
             f"SENT/S, ANSWER/S: per second of sending. Latency: from each request's scheduled start; "
             f"a timed-out one's until given up (at least {report['timeout_s']:g} s)", "", header]
    for name, summary in rows:
        latency = summary["latency_ms"]
        statuses = " ".join(f"{code}:{count}" for code, count in summary["status_counts"].items()) or "-"
        figures = " ".join(f"{latency[key]:>8.2f}" if latency[key] is not None else f"{'-':>8}"
                           for key in ("p50", "p90", "p99", "max"))
        lines.append(f"{name:<40} {summary['sent']:>7} {summary['answered']:>8} {summary['timed_out']:>7} "
                     f"{summary['connection_errors']:>7} {summary['dropped']:>7} {summary['achieved_rps']:>8.1f} "
                     f"{summary['answered_rps']:>8.1f} {figures}  {statuses}")
    return "\n".join(lines)


def run_command(urls: Sequence[str], rps: float, duration_s: float, timeout_s: float, max_in_flight: int,
                as_json: bool) -> int:
    """``seawall load``: progress on stderr, the report on stdout; exit 2 if refused."""
    try:
        load_plan = plan(urls, rps, duration_s, timeout_s, max_in_flight)
    except LoadRefused as exc:
        print(f"seawall: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    report = run(load_plan, progress=sys.stderr)
    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return 0
