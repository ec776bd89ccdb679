"""The browser fixture of the e2e tests: Debian's Chromium driven by Playwright, or a skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT


@pytest.fixture
def browser_page(monkeypatch):
    """A Chromium page, or a skip that says why no browser can be had."""
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - requirements-dev pins playwright
        pytest.skip(f"Playwright is not installed ({exc}); pip install -r requirements-dev.txt")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"No browser: {CHROMIUM} is missing. Install Debian's Chromium "
                    "(apt-get install -y chromium); .ci/run does this.")
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls are
    # still synchronous, so Django's async-safety guard is lifted for this test only.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            pytest.skip(f"Chromium at {CHROMIUM} could not start: {exc}")
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        # Screenshots show the page, not the admin's navigation sidebar.
        context.add_init_script(
            "localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        context.close()
        browser.close()
