"""A screenshot of the live dashboard under the latency-monkey scenario, for the README.

Runs ``bench/latency_monkey.py`` (seawall front only: the demo's 18 pools under load, then
latency injected into one dependency) and, while the latency is injected, loads
``/dashboard`` in headless Chromium and saves a full-page screenshot once the
dependency's circuit shows OPEN (or after a few seconds, whatever it shows).

The latency monkey's report is printed as usual, but the browser shares the CPU with
the cluster during the injection: quote figures from ``bench/latency_monkey.py`` alone.
The browser runs in a child process (this script with ``--shoot``): Playwright's sync API
must not share a process with the gevent load generator.

Run from the repository root (needs Debian's chromium: ``scripts/ensure-chromium``):
``.venv/bin/python bench/dashboard_screenshot.py [--out docs/dashboard.png] [latency_monkey options]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import gevent  # noqa: E402
import gevent.subprocess  # noqa: E402

import latency_monkey  # noqa: E402  (bench/, beside this script)

#: Debian's chromium and the flags the end-to-end tests use (tests/e2e/conftest.py).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WIDTH_PX = 1400
#: Seconds after the injection to start the browser (the breaker needs a window's volume).
SHOOT_AFTER_S = 2.0
#: Longest wait, in the page, for the dependency's circuit to show OPEN.
WAIT_OPEN_S = 7.0
#: Longest the browser child may take.
SHOOT_TIMEOUT_S = 60.0


def shoot(url: str, out: Path, commands: list[str]) -> None:
    """Load the dashboard, wait for a circuit of ``commands`` to show OPEN, save a full-page PNG."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="seawall-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": WIDTH_PX, "height": 1000}, device_scale_factor=1)
        try:
            page = context.new_page()
            page.goto(url)
            page.wait_for_function("Number(document.body.dataset.updates) >= 2", timeout=10_000)
            try:
                page.wait_for_function(
                    """keys => keys.some(key => document.querySelector(`[data-command="${key}"]`)
                                                   ?.dataset.breaker === "OPEN")""",
                    arg=commands, timeout=WAIT_OPEN_S * 1000)
            except PlaywrightTimeout:
                print(f"no circuit of {commands} showed OPEN in {WAIT_OPEN_S:g} s; shooting anyway", file=sys.stderr)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            context.close()


def run_load_shooting(out: Path, failures: list[str]) -> Callable[..., Any]:
    """``latency_monkey.run_load``, plus a screenshot taken in a child process while the latency is on."""
    run_load = latency_monkey.run_load

    def run(name: str, base_url: str, args: argparse.Namespace, commands: list[str],
            inject: Any, clear: Any) -> Any:
        def inject_then_shoot() -> None:
            inject()
            gevent.spawn_later(SHOOT_AFTER_S, shoot_in_child)

        def shoot_in_child() -> None:
            result = gevent.subprocess.run(
                [sys.executable, __file__, "--shoot", f"{base_url}/dashboard?sort=error", str(out),
                 "--commands", ",".join(commands)], capture_output=True, text=True, timeout=SHOOT_TIMEOUT_S)
            sys.stderr.write(result.stderr)
            if result.returncode != 0:
                failures.append(f"the screenshot failed (exit {result.returncode})")
            else:
                print(f"[{name}] dashboard screenshot: {out}", file=sys.stderr)

        return run_load(name, base_url, args, commands, inject_then_shoot, clear)

    return run


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--shoot"]:
        parser = argparse.ArgumentParser(prog="dashboard_screenshot.py --shoot")
        parser.add_argument("url")
        parser.add_argument("out", type=Path)
        parser.add_argument("--commands", default="")
        args = parser.parse_args(argv[1:])
        shoot(args.url, args.out, [key for key in args.commands.split(",") if key])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.png")
    args, monkey_argv = parser.parse_known_args(argv)
    failures: list[str] = []
    latency_monkey.run_load = run_load_shooting(args.out.resolve(), failures)
    latency_monkey.main(["--only", "seawall", *monkey_argv])
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures or not args.out.exists() else 0


if __name__ == "__main__":
    sys.exit(main())
