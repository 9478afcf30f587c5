"""Test helpers for code that uses seawall: a real broker and real workers in a temp dir.

``Cluster`` starts the processes on ``ipc://`` endpoints under a directory you give it,
waits until pools are registered, hands out clients, and stops every process it started
by its pid — on ``stop()``, on leaving its ``with`` block, or at interpreter exit::

    with Cluster(tmp_path, pythonpath=[my_tests_dir]) as cluster:
        cluster.start_broker()
        cluster.start_workers("ratings", "my_commands", count=2)
        cluster.wait_for_workers("ratings", 2)
        GetRatings(user_id=7).execute(client=cluster.client())
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import gevent

from api.client import Client
from broker.control_client import ControlError, control_request
from shared.config import Config, load

#: How long a process may take to exit after SIGTERM before it gets SIGKILL.
STOP_GRACE_S = 5.0


def free_port() -> int:
    """A loopback TCP port free right now, for a front a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout_s: float = 10.0) -> tuple[int | None, Any]:
    """(status, decoded JSON body) of a GET; (None, None) while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return None, None


class FakeClock:
    """A clock for the ``clock`` argument of breakers, windows and batchers: it stands
    still until the test moves it, so tests of time never sleep."""

    def __init__(self, now_s: float = 1000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def to_toml(document: dict[str, Any]) -> str:
    """TOML for a config-shaped dict: top-level scalars, then (nested) tables."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in document.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    while tables:
        name, table = tables.pop(0)
        lines.append(f"\n[{name}]")
        for key, value in table.items():
            if isinstance(value, dict):
                tables.append((f"{name}.{key}", value))
            else:
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


class Cluster:
    """A broker and worker processes for tests; every one stopped by pid at the end."""

    def __init__(self, directory: Path, settings: dict[str, Any] | None = None,
                 pythonpath: list[str | os.PathLike[str]] | None = None,
                 heartbeat_s: float = 0.2) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        document: dict[str, Any] = {"run_dir": "run", "broker": {"heartbeat_s": heartbeat_s}}
        for key, value in (settings or {}).items():
            if isinstance(value, dict) and isinstance(document.get(key), dict):
                document[key] = {**document[key], **value}
            else:
                document[key] = value
        self.config_path = self.directory / "seawall.toml"
        self.config_path.write_text(to_toml(document))
        self.config: Config = load(self.config_path)
        self.processes: list[subprocess.Popen[bytes]] = []
        self._clients: list[Client] = []
        self._env = dict(os.environ)
        paths = [str(p) for p in (pythonpath or [])] + [str(Path(__file__).resolve().parent.parent)]
        if self._env.get("PYTHONPATH"):
            paths.append(self._env["PYTHONPATH"])
        self._env["PYTHONPATH"] = os.pathsep.join(paths)
        atexit.register(self.stop)

    # -- processes -----------------------------------------------------------------------

    def start(self, name: str, *args: str, pipes: bool = False) -> subprocess.Popen[bytes]:
        """Start ``python ARGS --config ...``; its output goes to ``DIRECTORY/NAME.log``.

        With ``pipes``, stdin and stdout are pipes for the test to talk to it (stderr
        still goes to the log).
        """
        log_path = self.directory / f"{name}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                [sys.executable, *args, "--config", str(self.config_path)],
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log_file,
                stderr=log_file if pipes else subprocess.STDOUT, env=self._env, cwd=self.directory,
            )
        self.processes.append(process)
        return process

    def start_broker(self) -> subprocess.Popen[bytes]:
        process = self.start("broker", "-m", "broker")
        self.wait_until(lambda: self.status() is not None, "the broker to answer")
        return process

    def start_workers(self, dependency: str, commands: str, count: int = 1,
                      slots: int = 1) -> list[subprocess.Popen[bytes]]:
        return [
            self.start(f"worker-{dependency}", "-m", "workers", "--dependency", dependency,
                       "--commands", commands, "--slots", str(slots))
            for _ in range(count)
        ]

    def stop_process(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
                     grace_s: float = STOP_GRACE_S) -> int:
        """Signal one process by pid, wait for it, SIGKILL it if it will not go."""
        if process.poll() is None:
            try:
                os.kill(process.pid, sig)
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            except ProcessLookupError:
                pass
        return process.returncode

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            self.stop_process(process)
        atexit.unregister(self.stop)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- observing -----------------------------------------------------------------------

    def client(self) -> Client:
        client = Client(self.config)
        self._clients.append(client)
        return client

    def status(self, timeout_s: float = 0.5) -> dict[str, Any] | None:
        """The broker's status, or None while it is not answering."""
        try:
            return control_request(self.config.endpoints["control"], "status", timeout_s=timeout_s,
                                   config=self.config)
        except ControlError:
            return None

    def wait_for_workers(self, dependency: str, count: int, timeout_s: float = 15.0) -> dict[str, Any] | None:
        """Wait until the pool has ``count`` workers; the broker's status then (None if it
        stopped answering in between)."""
        def registered() -> bool:
            status = self.status()
            pool = status and status["pools"].get(dependency)
            if not pool:
                return False
            return pool["workers"] == count

        self.wait_until(registered, f"{count} workers of pool {dependency!r} to register", timeout_s)
        return self.status()

    def wait_until(self, condition: Any, what: str, timeout_s: float = 15.0, interval_s: float = 0.02) -> None:
        """Poll ``condition`` until true; on timeout fail with ``what`` and the process logs."""
        deadline_s = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline_s:
                raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}\n{self.logs()}")
            gevent.sleep(interval_s)

    def logs(self, tail_lines: int = 20) -> str:
        parts = []
        for log_path in sorted(self.directory.glob("*.log")):
            lines = log_path.read_text(errors="replace").splitlines()[-tail_lines:]
            parts.append(f"--- {log_path.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)


@dataclass(frozen=True)
class PoolProgram:
    """One ``[program:pool-NAME]`` of a supervised cluster."""

    commands: str  # comma-separated command modules
    numprocs: int = 1
    slots: int = 1


class SupervisedCluster(Cluster):
    """Like :class:`Cluster`, but supervisord runs the broker and every pool.

    supervisord stays in the foreground as this process's child (``nodaemon``), so
    stopping it by pid stops everything it started; ``rpc()`` is supervisor's own
    XML-RPC interface on a unix socket in the directory.
    """

    def __init__(self, directory: Path, pools: dict[str, PoolProgram], settings: dict[str, Any] | None = None,
                 pythonpath: list[str | os.PathLike[str]] | None = None, heartbeat_s: float = 0.2) -> None:
        supervisor_socket = Path(directory) / "run" / "supervisor.sock"
        settings = {**(settings or {}), "supervisor": {"serverurl": f"unix://{supervisor_socket}"}}
        super().__init__(directory, settings, pythonpath, heartbeat_s)
        self.pools = pools
        self.supervisor_socket = supervisor_socket
        self.supervisord_conf = self.directory / "supervisord.conf"
        self.supervisord_conf.write_text(self._supervisord_conf())

    def _supervisord_conf(self) -> str:
        python = sys.executable
        config = self.config_path
        sections = [
            f"[unix_http_server]\nfile = {self.supervisor_socket}\n",
            f"[supervisord]\nnodaemon = true\nlogfile = {self.directory}/supervisord.log\n"
            f"pidfile = {self.directory}/run/supervisord.pid\nchildlogdir = {self.directory}\n"
            f"directory = {self.directory}\n",
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n",
            f"[supervisorctl]\nserverurl = unix://{self.supervisor_socket}\n",
            f"[program:broker]\ncommand = {python} -m broker --config {config}\npriority = 10\n"
            f"autorestart = true\nstartsecs = 0\nstopsignal = TERM\nstopwaitsecs = 10\n"
            f"stdout_logfile = {self.directory}/broker.log\nredirect_stderr = true\n",
        ]
        for name, pool in self.pools.items():
            sections.append(
                f"[program:pool-{name}]\n"
                f"command = {python} -m workers --config {config} --dependency {name} "
                f"--commands {pool.commands} --slots {pool.slots}\n"
                f"process_name = %(program_name)s-%(process_num)02d\nnumprocs = {pool.numprocs}\n"
                "priority = 20\nautorestart = unexpected\nexitcodes = 0\nstartsecs = 0\nstartretries = 100\n"
                "stopsignal = TERM\nstopwaitsecs = 30\nstopasgroup = true\nkillasgroup = true\n"
                f"stdout_logfile = {self.directory}/%(program_name)s-%(process_num)02d.log\nredirect_stderr = true\n"
            )
        sections.append(f"[group:pools]\nprograms = {','.join(f'pool-{name}' for name in self.pools)}\n")
        return "\n".join(sections)

    def start_supervisord(self) -> subprocess.Popen[bytes]:
        """Start supervisord and wait until the broker answers and every pool is up."""
        (self.directory / "run").mkdir(exist_ok=True)
        with (self.directory / "supervisord.out").open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.supervisord_conf)],
                stdout=out, stderr=subprocess.STDOUT, env=self._env, cwd=self.directory,
            )
        self.processes.append(process)
        self.wait_until(lambda: self.status() is not None, "the broker under supervisord to answer", 30)
        for name, pool in self.pools.items():
            self.wait_for_workers(name, pool.numprocs, timeout_s=30)
        return process

    def rpc(self) -> Any:
        """supervisor's XML-RPC interface (``rpc().supervisor.getAllProcessInfo()``)."""
        from xmlrpc.client import ServerProxy

        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.supervisor_socket}")
        return ServerProxy("http://127.0.0.1", transport=transport)

    def stop_process(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
                     grace_s: float = STOP_GRACE_S) -> int:
        # supervisord waits for its programs to drain before it exits.
        is_supervisord = "supervisor.supervisord" in cast("list[str]", process.args)  # started with argument lists
        return super().stop_process(process, sig, grace_s * 6 if is_supervisord else grace_s)
