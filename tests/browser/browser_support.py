"""`open_page`: what every playground test's page fixture shares (importable by name, as
api_support.py is for the API tests)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page

DESKTOP = {"width": 1440, "height": 900}


@contextmanager
def open_page(
    browser: Browser,
    url: str | None,
    *,
    timeout_ms: int = 60_000,
    init_script: str | None = None,
    before_load: Callable[[BrowserContext, Page], None] | None = None,
    **context_options: Any,
) -> Iterator[Page]:
    """A fresh page (its own storage; a desktop viewport unless `viewport=` says otherwise) opened at
    `url` (None: not loaded yet). `before_load` hooks listeners on first. The test fails if the page
    threw a JavaScript error while it ran."""
    context = browser.new_context(**{"viewport": DESKTOP, **context_options})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    if init_script:
        pg.add_init_script(init_script)
    if before_load:
        before_load(context, pg)
    pg.set_default_timeout(timeout_ms)
    if url is not None:
        pg.goto(url)
    try:
        yield pg
        assert errors == [], f"JavaScript errors on the page: {errors}"
    finally:
        context.close()
