"""What compiling the modules on every call's path with mypyc would give: the command path, pure and compiled.

Why: the command path's targets (``docs/benchmarks.md``) are on the line at 64 callers and
missed at one, and what is left of the gap is Python on the path of every call, spread
over some thirty functions in three processes. Before the project decides whether to ship
a compiled build, this measures what one gives. A compiled build has costs: a C compiler at
install, compiled modules that go stale beside an edited source, and less for py-spy to
show an on-call engineer. mypyc compiles type-checked Python, which ``make typecheck``
keeps it.

It copies the tracked sources (as they are in the working tree) to a temporary
directory, and compiles ``COMPILED_MODULES`` there with mypyc. Then it runs
``bench/command_path.py`` ``RUNS`` times on each tree, the two taking turns. It prints
each run's ratio table and then the medians. It is a measurement, not a test: misses are
printed, never an exit status.

Run from the repository root: ``.venv/bin/python bench/compiled_core.py`` (about 7 min;
needs gcc and the Python headers, and mypy from the test extra).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measuring import progress

REPOSITORY = Path(__file__).resolve().parent.parent
REPRODUCE_COMMAND = ".venv/bin/python bench/compiled_core.py"

#: The modules a no-op command's call runs through in the caller, the broker and the
#: worker, and what they use on every message (protocol, transport, rolling counters).
#: A user's Command subclasses and the gevent hub stay interpreted.
COMPILED_MODULES = (
    "api/call_timers.py", "api/client.py", "api/connection.py", "api/reply_waiter.py",
    "broker/breaker.py", "broker/calls.py", "broker/commands.py", "broker/metrics.py", "broker/outbox.py",
    "broker/pool.py", "broker/ready_sockets.py", "broker/server.py",
    "shared/burst.py", "shared/owned_socket.py", "shared/rolling.py", "shared/transport.py",
    "shared/protocol/__init__.py", "shared/protocol/decoding.py", "shared/protocol/encoding.py",
    "shared/protocol/fields.py", "shared/protocol/messages.py", "shared/protocol/values.py",
    "workers/execution.py", "workers/worker.py",
)
#: Runs of command_path.py per tree; the trees take turns, the pure one first.
RUNS = 2
#: Bounds on the subprocesses: a hung build or benchmark fails the run rather than hanging it.
COMPILE_TIMEOUT_S = 900
RUN_TIMEOUT_S = 600


def copy_tracked_sources(destination: Path) -> None:
    """The files git tracks, with their working-tree contents (uncommitted edits included)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPOSITORY, check=True, capture_output=True).stdout
    for relative in listed.decode().split("\0"):
        source = REPOSITORY / relative
        if relative and source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def compile_modules(tree: Path) -> None:
    """mypyc over COMPILED_MODULES, in place: each gets a compiled module beside its source."""
    log_path = tree / "mypyc.log"
    with log_path.open("wb") as log_file:
        built = subprocess.run([sys.executable, "-m", "mypyc", *COMPILED_MODULES], cwd=tree, stdout=log_file,
                               stderr=subprocess.STDOUT, timeout=COMPILE_TIMEOUT_S)
    if built.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(f"mypyc failed (exit {built.returncode}); the end of {log_path}:\n" + "\n".join(tail))
    loaded = subprocess.run([sys.executable, "-c", "import broker.server, api.client, workers.worker as w; "
                             "print(broker.server.__file__, api.client.__file__, w.__file__)"],
                            cwd=tree, env=tree_env(tree), check=True, capture_output=True, text=True).stdout.split()
    if not all(path.endswith(".so") for path in loaded):
        raise SystemExit(f"the compiled tree imports sources, not its compiled modules: {loaded}")


def tree_env(tree: Path) -> dict[str, str]:
    """Imports from ``tree`` first, ahead of the editable install's path to this repository."""
    return {**os.environ, "PYTHONPATH": str(tree)}


def run_command_path(tree: Path) -> str:
    """One run of bench/command_path.py from ``tree``: its report."""
    finished = subprocess.run([sys.executable, "bench/command_path.py"], cwd=tree, env=tree_env(tree),
                              capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    if finished.returncode != 0:
        raise SystemExit(f"bench/command_path.py failed in {tree}:\n{finished.stderr[-3000:]}")
    return finished.stdout


def ratio_rows(report: str) -> dict[int, tuple[float, float]]:
    """callers -> (pooled p50 ratio, pooled calls/s ratio), from the report's ratio table."""
    rows = {}
    table = report.split("Targets:", 1)[1]
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0].isdigit():
            rows[int(cells[0])] = (float(cells[1].rstrip("×")), float(cells[3].rstrip("×")))
    return rows


def ratio_table(report: str) -> str:
    """The report's ratio table, as printed: the first table after "Targets:"."""
    table: list[str] = []
    for line in report.split("Targets:", 1)[1].splitlines():
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    return "\n".join(table)


def main() -> int:
    print(f"Reproduce with: {REPRODUCE_COMMAND}")
    print(f"Compiled with mypyc: {len(COMPILED_MODULES)} modules ({', '.join(COMPILED_MODULES)})")
    directory = Path(tempfile.mkdtemp(prefix="swc-"))
    try:
        compiled_tree = directory / "compiled"
        progress(f"copying the sources to {compiled_tree} and compiling them (a few minutes)")
        copy_tracked_sources(compiled_tree)
        compile_modules(compiled_tree)
        ratios: dict[str, list[dict[int, tuple[float, float]]]] = {"pure": [], "compiled": []}
        for run_number in range(1, RUNS + 1):
            for name, tree in (("pure", REPOSITORY), ("compiled", compiled_tree)):
                progress(f"run {run_number} of {RUNS}: {name}")
                report = run_command_path(tree)
                ratios[name].append(ratio_rows(report))
                print(f"\nRun {run_number}, {name}:\n\n{ratio_table(report)}")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"\nMedians over {RUNS} runs of the pooled ratios to the floor (p50 / calls/s; "
          "targets: p50 ≤ 1.3×, calls/s ≥ 0.7×):\n")
    print("| callers | pure | compiled |")
    print("|---:|---|---|")
    for callers in sorted(ratios["pure"][0]):
        cells = []
        for name in ("pure", "compiled"):
            p50 = statistics.median(run[callers][0] for run in ratios[name])
            throughput = statistics.median(run[callers][1] for run in ratios[name])
            cells.append(f"{p50:.2f}× / {throughput:.2f}×")
        print(f"| {callers} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
