"""WCAG 2.2 AA on the playground, checked by axe-core in light and dark mode, before and after a result;
and the screenshots of the desktop and phone layouts in both modes (test-artifacts/).

axe-core is vendored (tests/browser/vendor/axe.min.js, MPL-2.0): nothing is fetched from elsewhere.
The test fails on any violation axe rates serious or critical.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import open_page
from playwright.sync_api import Browser, Page

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
SEGMENT_URL = "/v1/images/segmentation"


def _axe_violations(page: Page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async () => {
          const r = await axe.run(document, {
            runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
          });
          return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + n.failureSummary) }));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


@pytest.fixture(params=["light", "dark"])
def scheme(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def page(browser: Browser, server_url: str, scheme: str) -> Iterator[Page]:
    with open_page(browser, server_url + "/", color_scheme=scheme) as pg:  # type: ignore[arg-type]
        yield pg


def test_no_serious_accessibility_violations_and_screenshots(
    page: Page, scheme: str, photo: Path, api_key: str, artifacts_dir: Path
) -> None:
    page.wait_for_selector("#server-status[data-state='ready']")
    assert page.evaluate("() => matchMedia('(prefers-color-scheme: dark)').matches") == (scheme == "dark")
    empty = _axe_violations(page)
    assert empty == [], f"{scheme}, empty page: {empty}"

    # The structure the issue asks for: one h1, a drop zone that is not a button around a button.
    assert page.locator("h1").count() == 1
    assert page.get_attribute("#dropzone", "role") is None
    assert page.locator("#dropzone button").count() >= 1

    page.fill("#api-key", api_key)
    page.set_input_files("#file-input", str(photo))
    page.fill("#prompt", "person")
    with page.expect_response(lambda r: r.url.endswith(SEGMENT_URL)) as info:
        page.click("#run")
    n = info.value.json()["num_segments"]
    page.wait_for_selector("#run:not([disabled])")
    assert n > 0

    # The result is announced and the picture has a text alternative naming what was found.
    assert page.inner_text("#announce") == f"{n} segment{'s' * (n != 1)} found: person {n}."
    assert page.get_attribute("#announce", "aria-live") == "polite"
    assert page.get_attribute("#canvas-stack", "role") == "img"
    assert f"{n} segment" in (page.get_attribute("#canvas-stack", "aria-label") or "")
    # Each checkbox is named by its segment's label and number.
    first = page.locator("#segment-list li").first
    assert first.locator(".seg-visible").get_attribute("aria-label") == f"Show person {first.get_attribute('data-id')}"
    # The remove button meets the 24 x 24 target size.
    box = page.locator("#clear-image").bounding_box()
    assert box and box["width"] >= 24 and box["height"] >= 24

    page.click("#code-panel summary")
    page.mouse.move(5, 5)
    result = _axe_violations(page)
    assert result == [], f"{scheme}, with a result: {result}"

    page.screenshot(path=str(artifacts_dir / f"playground-desktop-{scheme}.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    phone = _axe_violations(page)
    assert phone == [], f"{scheme}, phone layout: {phone}"
    page.screenshot(path=str(artifacts_dir / f"playground-phone-{scheme}.png"), full_page=True)
