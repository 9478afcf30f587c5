"""Hosts for multi-host tests: Linux network namespaces joined by veth pairs to one switch.

Each :class:`Host` is a namespace with loopback and one interface (``eth0``) on a shared
subnet; its cable is a veth pair whose other end is a port of a bridge in a separate
"switch" namespace, so the root namespace's interfaces are never touched. Processes run
in a host through ``ip netns exec``, which execs the program: the Popen's pid is the
program's own, and every one is stopped by that pid when the network is torn down.

Namespace names carry the owning process's pid (``swmh<PID>n<K>-<HOST>``), so a run
deletes the leftovers of crashed earlier runs (owner gone) and never another live run's::

    with Network(tmp_path) as network:
        broker_host = network.add_host("a")
        process = broker_host.start("broker", [sys.executable, "-m", "broker", ...])
        broker_host.link_down()   # pull its cable at the switch
"""

from __future__ import annotations

import atexit
import itertools
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Sequence

#: Prefix of every namespace these tests make; leftovers are recognised by it.
NAMESPACE_PREFIX = "swmh"
#: A namespace name: prefix, owner pid, network number, host name.
NAMESPACE_PATTERN = re.compile(rf"^{NAMESPACE_PREFIX}(\d+)n(\d+)-([a-z0-9]+)$")
#: Hosts' addresses: SUBNET.N/24, one subnet per network (networks never see each other).
SUBNET = "10.213.0"
#: Linux limits interface names to 15 characters; switch ports are "p-" + host name.
MAX_HOST_NAME_CHARS = 12
#: How long a process may take to exit after SIGTERM before it gets SIGKILL.
STOP_GRACE_S = 5.0
#: How long one ``ip`` command may take.
IP_COMMAND_TIMEOUT_S = 10.0

_network_numbers = itertools.count(1)


class NamespacesUnavailable(RuntimeError):
    """Network namespaces cannot be made here; the message says why and what to do."""


def _ip(*args: str) -> str:
    """Run ``ip ARGS``; its stdout, or NamespacesUnavailable naming the command and its error."""
    command = ["ip", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=IP_COMMAND_TIMEOUT_S)
    except FileNotFoundError:
        raise NamespacesUnavailable("`ip` (iproute2) is not installed: run scripts/ensure-test-deps as root") from None
    if done.returncode != 0:
        raise NamespacesUnavailable(f"`{' '.join(command)}` failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def check_available() -> None:
    """Raise NamespacesUnavailable unless this process can make network namespaces."""
    if shutil.which("ip") is None:
        raise NamespacesUnavailable("`ip` (iproute2) is not installed: run scripts/ensure-test-deps as root")
    if os.geteuid() != 0:
        raise NamespacesUnavailable(f"network namespaces need root; this is uid {os.geteuid()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers() -> list[str]:
    """Delete namespaces of earlier runs whose owner process is gone (and what runs in them)."""
    removed = []
    for line in _ip("netns", "list").splitlines():
        name = line.split()[0] if line.split() else ""
        match = NAMESPACE_PATTERN.match(name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        for pid_text in _ip("netns", "pids", name).split():
            try:  # a process a crashed run of these tests started, still in its host
                os.kill(int(pid_text), signal.SIGKILL)
            except ProcessLookupError:
                pass
        _ip("netns", "del", name)
        removed.append(name)
    return removed


class Host:
    """One namespace on the network: ``eth0`` at ``address``, its own processes."""

    def __init__(self, network: Network, name: str, address: str) -> None:
        self.network = network
        self.name = name
        self.address = address
        self.namespace = network.namespace_name(name)
        self.port = f"p-{name}"  # its end of the cable, on the switch
        self.directory = network.directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen[bytes]] = []

    def _create(self) -> None:
        self.network.run_ip("netns", "add", self.namespace)
        self.network.run_ip("-n", self.network.switch, "link", "add", self.port, "type", "veth",
                            "peer", "name", "eth0", "netns", self.namespace)
        self.network.run_ip("-n", self.network.switch, "link", "set", self.port, "master", "br0", "up")
        self.network.run_ip("-n", self.namespace, "addr", "add", f"{self.address}/24", "dev", "eth0")
        self.network.run_ip("-n", self.namespace, "link", "set", "eth0", "up")
        self.network.run_ip("-n", self.namespace, "link", "set", "lo", "up")

    # -- processes -----------------------------------------------------------------------

    def start(self, log_name: str, argv: Sequence[str], env: dict[str, str] | None = None,
              pipes: bool = False) -> subprocess.Popen[bytes]:
        """Run ``argv`` in this host, in its directory; output to ``DIRECTORY/LOG_NAME.log``.

        With ``pipes``, stdin and stdout are pipes for the test (stderr still goes to the log).
        """
        log_path = self.directory / f"{log_name}.log"
        with log_path.open("ab") as log_file:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace, *argv], cwd=self.directory, env=env,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log_file,
                stderr=log_file if pipes else subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
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
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
        return process.returncode

    # -- the cable -----------------------------------------------------------------------

    def link_down(self) -> None:
        """Pull the host's cable at the switch: its packets vanish, no error anywhere."""
        self.network.run_ip("-n", self.network.switch, "link", "set", self.port, "down")

    def link_up(self) -> None:
        self.network.run_ip("-n", self.network.switch, "link", "set", self.port, "up")

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.address!r}, namespace={self.namespace!r})"


class Network:
    """A switch namespace with a bridge, and hosts cabled to it; all removed on close()."""

    def __init__(self, directory: Path) -> None:
        check_available()
        remove_leftovers()
        self.directory = Path(directory)
        self.number = next(_network_numbers)
        self.hosts: dict[str, Host] = {}
        self._namespaces: list[str] = []
        self.switch = self.namespace_name("sw")
        atexit.register(self.close)
        try:
            self.run_ip("netns", "add", self.switch)
            self.run_ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            self.run_ip("-n", self.switch, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    def namespace_name(self, host_name: str) -> str:
        return f"{NAMESPACE_PREFIX}{os.getpid()}n{self.number}-{host_name}"

    def run_ip(self, *args: str) -> str:
        if args[:2] == ("netns", "add"):
            self._namespaces.append(args[2])  # before it exists: a half-made host is still deleted
        return _ip(*args)

    def add_host(self, name: str) -> Host:
        """A new host at the next address of the subnet (``SUBNET.1``, ``.2``, ...)."""
        if not re.fullmatch(r"[a-z0-9]{1,%d}" % MAX_HOST_NAME_CHARS, name) or name == "sw" or name in self.hosts:
            raise ValueError(f"host name {name!r}: expected 1-{MAX_HOST_NAME_CHARS} of [a-z0-9], unused, not 'sw'")
        host = Host(self, name, f"{SUBNET}.{len(self.hosts) + 1}")
        self.hosts[name] = host
        host._create()
        return host

    def close(self) -> None:
        """Stop every process (SIGTERM to all, then wait for each), delete every namespace."""
        hosts = list(self.hosts.values())
        for host in hosts:
            for process in host.processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
        for host in hosts:
            for process in host.processes:
                host.stop(process)
        errors = []
        existing = {line.split()[0] for line in _ip("netns", "list").splitlines() if line.split()}
        for namespace in reversed(self._namespaces):
            if namespace not in existing:  # its `ip netns add` failed
                continue
            try:  # deleting a namespace deletes its interfaces, and so both ends of each veth
                _ip("netns", "del", namespace)
            except NamespacesUnavailable as exc:
                errors.append(str(exc))
        self._namespaces.clear()
        self.hosts.clear()
        atexit.unregister(self.close)
        if errors:
            raise NamespacesUnavailable("could not delete namespaces: " + "; ".join(errors))

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
