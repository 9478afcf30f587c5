"""``seawall logs --follow`` as a real process: lines show as they are written, Ctrl-C exits 0,
and a breaker that a real broker opens shows up at once."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from sample_commands import Flaky

#: The repository, so ``python -m broker.cli`` imports this checkout.
REPO_DIR = Path(__file__).resolve().parents[2]
#: How long a line may take from the log file to the follower's output (it polls every 0.2 s).
SHOW_TIMEOUT_S = 5.0


class LogsProcess:
    """``seawall logs ARGS`` in a child process; its output lines read with a timeout."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "broker.cli", "logs", "--no-color", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO_DIR,
            env={**os.environ, "PYTHONPATH": str(REPO_DIR)})
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for text in self.process.stdout:
            self.lines.put(text.rstrip("\n"))

    def wait_until_following(self, path: Path, timeout_s: float = 10.0) -> None:
        """Until the follower has ``path`` open: from then on it sees every line appended."""
        deadline_s = time.monotonic() + timeout_s
        child = psutil.Process(self.process.pid)
        while not any(Path(opened.path) == path for opened in child.open_files()):
            assert self.process.poll() is None, f"seawall logs exited: {self.process.stderr.read()}"
            assert time.monotonic() < deadline_s, f"seawall logs did not open {path} in {timeout_s:g} s"
            time.sleep(0.02)

    def next_line(self, timeout_s: float = SHOW_TIMEOUT_S) -> str:
        try:
            return self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"seawall logs printed nothing in {timeout_s:g} s") from None

    def interrupt(self, timeout_s: float = 10.0) -> int:
        """Ctrl-C, by pid; SIGKILL if it does not exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def close(self) -> None:
        self.interrupt()
        self.process.stdout.close()
        self.process.stderr.close()


@pytest.fixture
def start_logs():
    started: list[LogsProcess] = []

    def start(*args: str) -> LogsProcess:
        started.append(LogsProcess(*args))
        return started[-1]

    yield start
    for logs in started:
        logs.close()


def test_follow_shows_the_last_lines_then_lines_as_they_are_appended_and_ctrl_c_exits_0(tmp_path, start_logs):
    path = tmp_path / "broker.log"
    path.write_text('{"event": "old", "level": "info", "timestamp": "2024-05-01T02:49:59Z"}\n'
                    '{"event": "last", "level": "info", "timestamp": "2024-05-01T02:50:00Z"}\n')
    logs = start_logs("--follow", "-n", "1", str(path))
    assert logs.next_line().split()[3] == "last"  # printed once the file is open and read to its end
    with path.open("a") as stream:
        stream.write('{"event": "after", "level": "warning", "process": "broker", "pid": 7, '
                     '"timestamp": "2024-05-01T02:50:01Z", "command": "GetRatings"}\n')
    shown = logs.next_line()
    assert shown.split()[1:5] == ["WARN", "broker/7", "after", "command=GetRatings"]
    assert logs.interrupt() == 0
    assert "Traceback" not in logs.process.stderr.read()


def test_follow_event_breaker_opened_shows_an_opening_as_it_happens(make_cluster, start_logs):
    cluster = make_cluster({"commands": {"Flaky": {"breaker_volume_threshold": 4, "breaker_error_pct": 50}}})
    cluster.start_broker()
    cluster.start_workers("sample", "sample_commands", slots=4)
    cluster.wait_for_workers("sample", 1)
    broker_log = cluster.directory / "broker.log"
    logs = start_logs("--follow", "--event", "breaker_opened", str(broker_log))
    logs.wait_until_following(broker_log)

    client = cluster.client()
    assert [Flaky(fail=True).execute(client=client) for _ in range(4)] == ["fallback"] * 4

    shown = logs.next_line()
    assert "breaker_opened" in shown and "WARN" in shown
    assert "command=Flaky" in shown and "new=OPEN" in shown
    assert logs.interrupt() == 0
