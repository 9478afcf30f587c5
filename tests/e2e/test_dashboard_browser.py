"""The dashboard in headless Chromium, served by a real front over a real broker and workers.

One command's dependency fails on every call; the page must show its circuit OPEN and its
error rate, following the broker within two seconds, while a healthy command stays CLOSED.
"""

from __future__ import annotations

import textwrap
import time

import pytest
from playwright.sync_api import expect

from api.testing import get_json

#: The page follows the broker's state within this long (broker publish + stream period + render).
FOLLOWS_WITHIN_S = 2.0
#: Calls of the failing command: over the breaker's volume threshold.
FAILING_CALLS = 12

ENDPOINTS = textwrap.dedent('''
    from api import CommandError
    from sample_commands import Echo, Fail

    def fail(request):
        try:
            return Fail(message="the dependency is down").execute()
        except CommandError as exc:
            return 503, {"failure": str(exc.failure)}

    def echo(request):
        return Echo(text="ok").execute()

    ROUTES = {"fail": fail, "echo": echo}
''')

#: In the page: does the card of command ``key`` show its circuit OPEN?
SHOWS_OPEN = "key => document.querySelector(`[data-command='${key}'] .breaker-state`)?.textContent === 'OPEN'"


def card(page, command):
    return page.locator(f'[data-command="{command}"]')


@pytest.fixture
def front(make_front):
    """A broker, a worker pool "sample" and an HTTP front; (cluster, base URL)."""
    # Open at 5 calls and stay open; a 20 s window keeps the counts while the test reads them.
    cluster, base = make_front({"e2e": ENDPOINTS}, {
        "commands": {"Fail": {"breaker_volume_threshold": 5, "breaker_sleep_s": 60.0, "window_s": 20.0}}})
    assert get_json(base + "/e2e/echo")[0] == 200  # Echo has a card from the start
    return cluster, base


def test_a_failing_dependency_shows_its_circuit_open_and_its_error_rate(front, page):
    cluster, base = front
    page.goto(base + "/dashboard")
    expect(card(page, "Echo").locator(".breaker-state")).to_have_text("CLOSED", timeout=10_000)

    for _ in range(FAILING_CALLS):
        get_json(base + "/e2e/fail")
    cluster.wait_until(lambda: cluster.status()["commands"]["Fail"]["breaker"] == "OPEN", "the breaker to open",
                       timeout_s=10)
    opened_s = time.monotonic()

    page.wait_for_function(SHOWS_OPEN, arg="Fail", timeout=10_000)  # checked every frame: the page's own time
    followed_s = time.monotonic() - opened_s
    failing = card(page, "Fail")
    expect(failing).to_have_attribute("data-health", "red")
    expect(failing.locator(".error-pct")).to_have_text("100.0 %")
    assert float(failing.locator(".error-pct").get_attribute("data-value")) == pytest.approx(100.0)
    assert int(failing.locator(".count-failures").inner_text()) >= 5
    assert failing.locator(".card-sub").get_attribute("data-hosts") == "1"
    expect(card(page, "Echo").locator(".breaker-state")).to_have_text("CLOSED")
    expect(card(page, "Echo").locator(".error-pct")).to_have_text("0.0 %")
    expect(page.locator('[data-pool="sample"] .pool-workers')).to_have_text("1")
    assert followed_s <= FOLLOWS_WITHIN_S, f"the page showed OPEN {followed_s:.2f} s after the broker"


def test_the_page_sorts_commands_and_says_when_its_stream_is_lost(front, page):
    cluster, base = front
    get_json(base + "/e2e/fail")
    page.goto(base + "/dashboard")
    cards = page.locator("[data-command]")
    expect(cards).to_have_count(2, timeout=10_000)

    page.click('[data-sort="name"]')
    assert [cards.nth(i).get_attribute("data-command") for i in range(2)] == ["Echo", "Fail"]
    page.click('[data-sort="error"]')
    assert [cards.nth(i).get_attribute("data-command") for i in range(2)] == ["Fail", "Echo"]

    cluster.stop_process(next(p for p in cluster.processes if "api" in p.args))
    expect(page.locator("#connection")).to_have_attribute("data-state", "lost", timeout=10_000)
    expect(page.locator("#connection")).to_contain_text("connection lost")
