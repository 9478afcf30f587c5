"""Headless Chromium for end-to-end tests: Debian's ``chromium`` driven by Playwright.

The browser is the system's (``scripts/ensure-chromium`` installs it; Playwright's own
download is never used). A test that needs it and does not find it fails, naming the fix.
"""

from __future__ import annotations

import os
import tempfile
from typing import Iterator

import pytest

#: Debian's chromium; the test setup (scripts/ensure-chromium) installs it.
CHROMIUM = "/usr/bin/chromium"
#: Offline and quiet: no GPU, no QUIC, no first-run, update, sync or background traffic.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}


@pytest.fixture
def page() -> Iterator:
    """A page of a fresh headless Chromium (new empty profile), closed after the test."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/ensure-chromium (as root it installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="seawall-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield page
        finally:
            context.close()
        assert not errors, f"the page raised: {errors}"
