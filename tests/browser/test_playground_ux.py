"""The playground's first-hour fixes (issue 14, points 8-10) in headless Chromium against the real server.

Server status and limits from /readyz; images refused before any upload (not an image, over the byte,
pixel or concept limit); the phone layout keeps the result's heading on screen; a pasted data: URI
is sent as a file named pasted-image.png; a pasted "Bearer" scheme is stripped; a 401 focuses the
key; the latency from Server-Timing; the code panel (whose Python snippets are run for real);
zoom, pan and before/after; sample photos; the hovered segment's row scrolled into view.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from browser_support import open_page
from PIL import Image
from playwright.sync_api import Browser, Page, Request

SEGMENT_URL = "/v1/images/segmentation"


@pytest.fixture
def page(browser: Browser, server_url: str) -> Iterator[Page]:
    """A fresh page, not yet loaded, whose segmentation requests are kept in `page.posts`."""
    posts: list[Request] = []

    def record(context, pg) -> None:
        pg.on("request", lambda r: posts.append(r) if r.url.endswith(SEGMENT_URL) else None)
        pg.posts = posts  # type: ignore[attr-defined]

    with open_page(browser, None, before_load=record) as pg:
        yield pg


def _frames(page: Page) -> None:
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def _run(page: Page, prompt: str = "person") -> dict:
    page.fill("#prompt", prompt)
    with page.expect_response(lambda r: r.url.endswith(SEGMENT_URL)) as info:
        page.click("#run")
    page.wait_for_selector("#run:not([disabled])")
    _frames(page)
    return info.value.json()


def _readyz_with(page: Page, server_url: str, **limits: float) -> None:
    """Serve the page a /readyz whose limits are the real ones with `limits` changed."""

    def handle(route):  # type: ignore[no-untyped-def]
        real = route.fetch()
        body = real.json()
        body["limits"].update(limits)
        route.fulfill(response=real, body=json.dumps(body))

    page.route("**/readyz", handle)


def test_server_status_and_limits_are_shown_on_load(page: Page, server_url: str) -> None:
    page.goto(server_url + "/")
    page.wait_for_selector("#server-status[data-state='ready']")
    assert page.inner_text("#server-status-text").startswith("Ready")
    assert page.inner_text("#limits") == "Up to 20.0 MB and 50 MP per image, 16 concepts per prompt"


@pytest.mark.parametrize(
    ("status", "message", "state", "shown"),
    [
        (
            503,
            "The model is still loading. Retry shortly; GET /readyz answers 200 once it is ready.",
            "loading",
            "Model loading…",
        ),
        (
            503,
            "The model failed to load; the operator must fix the server. (No SAM 3 checkpoint)",
            "failed",
            "No SAM 3 checkpoint",
        ),
    ],
)
def test_a_loading_or_failed_model_is_shown(
    page: Page, server_url: str, status: int, message: str, state: str, shown: str
) -> None:
    body = {"error": {"message": message, "type": "server_error", "code": "model_not_ready", "param": None}}
    page.route("**/readyz", lambda route: route.fulfill(status=status, json=body))
    page.goto(server_url + "/")
    page.wait_for_selector(f"#server-status[data-state='{state}']")
    assert shown in page.inner_text("#server-status-text")


def test_images_over_the_limits_or_not_images_are_refused_before_upload(
    page: Page, server_url: str, photo: Path, tmp_path: Path, api_key: str
) -> None:
    _readyz_with(page, server_url, max_image_bytes=300 * 1024, max_image_pixels=200_000, max_concepts=2)
    page.goto(server_url + "/")
    page.wait_for_selector("#limits:not([hidden])")
    page.fill("#api-key", api_key)

    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    page.set_input_files("#file-input", str(text))
    assert page.inner_text("#error-title") == "Not an image"
    assert page.is_hidden(".dropzone-file")

    page.set_input_files("#file-input", str(photo))  # 415 KB > 300 KB
    assert page.inner_text("#error-title") == "Image too large"
    assert "300 KB" in page.inner_text("#error-message")

    small = tmp_path / "wide.jpg"  # 50 KB, but 600 x 400 = 240,000 px > 200,000
    Image.fromarray(np.full((400, 600, 3), 90, np.uint8)).save(small)
    page.set_input_files("#file-input", str(small))
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error-title") == "Image too large"
    assert "0.2 MP" in page.inner_text("#error-message")
    assert page.is_hidden(".dropzone-file")

    fits = tmp_path / "fits.png"
    Image.fromarray(np.full((300, 300, 3), 90, np.uint8)).save(fits)
    page.set_input_files("#file-input", str(fits))
    page.wait_for_selector("#file-detail:has-text('300 × 300')")
    page.fill("#prompt", "a, b, c")
    page.click("#run")
    assert page.inner_text("#error-title") == "Too many concepts"
    assert page.posts == []  # type: ignore[attr-defined]


def test_phone_keeps_the_result_heading_on_screen(browser: Browser, server_url: str, photo: Path, api_key: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(server_url + "/")
        page.fill("#api-key", api_key)
        page.set_input_files("#file-input", str(photo))
        _run(page)
        page.wait_for_timeout(300)  # any smooth scroll or late layout would have moved it by now
        top = page.evaluate("() => document.getElementById('summary').getBoundingClientRect().top")
        assert 0 <= top < 200, f"the result heading is at y={top} on a 844-pixel-high screen"
    finally:
        context.close()


def test_a_pasted_data_uri_is_sent_as_a_file_with_a_sensible_name(
    page: Page, server_url: str, api_key: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (420, 480, 3), dtype=np.uint8)).save(buf, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    assert len(uri) > 750_000  # over the form field limit that made the server refuse it
    page.goto(server_url + "/")
    page.fill("#api-key", api_key)
    page.fill("#image-url", uri)
    page.click("#url-form button[type=submit]")
    page.wait_for_selector("#file-detail:has-text('480 × 420')")
    assert page.inner_text("#file-name") == "pasted-image.png"
    body = _run(page)
    assert "segments" in body
    # Sent as a multipart file (a 750 KB+ form field would be refused), not as the `image` string.
    assert page.posts[-1].headers["content-type"].startswith("multipart/form-data")  # type: ignore[attr-defined]
    source = page.evaluate("() => { const s = window.segserve.state.source; return [s.kind, s.name, s.file.size]; }")
    assert source == ["file", "pasted-image.png", len(buf.getvalue())]
    with page.expect_download() as dl:
        page.click("#dl-json")
    assert dl.value.suggested_filename == "pasted-image-segments.json"


def test_a_bearer_scheme_is_stripped_and_a_401_focuses_the_key(
    page: Page, server_url: str, photo: Path, api_key: str
) -> None:
    page.goto(server_url + "/")
    page.set_input_files("#file-input", str(photo))
    page.fill("#api-key", "wrong")
    _run(page)
    assert page.evaluate("() => document.activeElement.id") == "api-key"
    assert page.get_attribute("#api-key", "aria-invalid") == "true"

    page.fill("#api-key", f"Bearer {api_key}")  # as copied from a curl line
    assert page.get_attribute("#api-key", "aria-invalid") is None
    body = _run(page)
    assert "segments" in body, body
    assert page.posts[-1].headers["authorization"] == f"Bearer {api_key}"  # type: ignore[attr-defined]
    page.locator("#api-key").blur()
    assert page.input_value("#api-key") == api_key


def test_latency_code_panel_zoom_compare_and_hover(
    page: Page, server_url: str, photo: Path, api_key: str, tmp_path: Path
) -> None:
    page.goto(server_url + "/")
    page.fill("#api-key", api_key)
    page.set_input_files("#file-input", str(photo))
    page.click(".advanced summary")
    page.fill("#opt-threshold", "0.2")
    body = _run(page)
    n = body["num_segments"]
    assert n > 1
    timing = page.inner_text("#timing")
    assert timing.startswith("Server ") and "total" in timing, timing

    # The code panel: the request just sent, three ways; the Python ones are run for real.
    page.click("#code-panel summary")
    code = {}
    for lang in ("curl", "sdk", "requests"):
        page.click(f"#code-panel [data-lang='{lang}']")
        code[lang] = page.inner_text("#code-text")
    assert f"curl {server_url}{SEGMENT_URL}" in code["curl"]
    assert "-F image=@'astronaut.png'" in code["curl"] and "-F 'prompt=person'" in code["curl"]
    assert "-F 'threshold=0.2'" in code["curl"]
    assert api_key not in "".join(code.values())  # the key is read from the environment, never shown
    (tmp_path / "astronaut.png").write_bytes(photo.read_bytes())
    env = {**os.environ, "SEGSERVE_API_KEY": api_key}
    for lang in ("sdk", "requests"):
        proc = subprocess.run(
            [sys.executable, "-c", code[lang]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, (lang, code[lang], proc.stderr)
        assert str(n) in proc.stdout, (lang, proc.stdout)

    # Hovering a segment on the picture scrolls its row into view in the list. The last row starts
    # below the list's visible part; only its segment is shown, so nothing covers it on the picture.
    page.evaluate("() => window.scrollTo(0, 0)")
    scrolled = page.evaluate(
        """async () => {
          const L = window.segserve.state.layers, list = document.getElementById("segment-list");
          const stack = document.getElementById("canvas-stack");
          const r = document.getElementById("mask-layer").getBoundingClientRect();
          const frame = () => new Promise((res) => requestAnimationFrame(res));
          const index = Math.max(...L.byIndex.keys());
          document.getElementById("toggle-all").click();
          list.querySelector(`li[data-index='${index}'] .seg-visible`).click();
          await frame();
          list.scrollTop = 0;
          const row = list.querySelector(`li[data-index='${index}']`);
          const hiddenBefore = row.getBoundingClientRect().top >= list.getBoundingClientRect().bottom;
          const [ax, ay] = L.byIndex.get(index).anchor;
          stack.dispatchEvent(new MouseEvent("mousemove", { bubbles: true,
            clientX: r.left + (ax / L.dw) * r.width, clientY: r.top + (ay / L.dh) * r.height }));
          await frame();
          const a = row.getBoundingClientRect(), b = list.getBoundingClientRect();
          const out = { index, hover: window.segserve.state.hover, hiddenBefore,
            active: row.classList.contains("active"),
            inside: a.top >= b.top - 1 && a.bottom <= b.bottom + 1, scrollTop: list.scrollTop, pageY: window.scrollY };
          stack.dispatchEvent(new MouseEvent("mouseleave"));
          document.getElementById("toggle-all").click();
          if (!document.getElementById("toggle-all").checked) document.getElementById("toggle-all").click();
          return out;
        }"""
    )
    assert scrolled["hiddenBefore"], f"the list shows every row; nothing to scroll: {scrolled}"
    assert scrolled["hover"] == scrolled["index"] and scrolled["active"], scrolled
    assert scrolled["inside"] and scrolled["scrollTop"] > 0, scrolled
    assert scrolled["pageY"] == 0, "hovering scrolled the page, not just the list"

    # Zoom: one transform on the whole stack, so every layer stays on top of the others.
    page.click("#zoom-in")
    page.click("#zoom-in")
    assert page.inner_text("#zoom-level") == "225%"
    rects = page.evaluate(
        "() => [...document.querySelectorAll('#canvas-stack > canvas')].map((c) => {"
        " const r = c.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })"
    )
    assert all(np.allclose(r, rects[0], atol=0.5) for r in rects), rects
    stage = page.locator("#stage").bounding_box()
    assert stage and rects[0][2] > stage["width"]
    # Pan by dragging (no drawing tool is active).
    before = rects[0]
    cx, cy = stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 80, cy + 40, steps=4)
    page.mouse.up()
    after = page.locator("#image-layer").bounding_box()
    assert after and abs(after["x"] - before[0] - 80) < 2 and abs(after["y"] - before[1] - 40) < 2
    page.click("#zoom-reset")
    assert page.inner_text("#zoom-level") == "100%"

    # Before/after: the slider uncovers the photo from the left without redrawing the masks.
    draws = page.evaluate("() => performance.getEntriesByName('segserve:draw').length")
    page.evaluate(
        "() => { const s = document.getElementById('compare'); s.value = '40'; s.dispatchEvent(new Event('input')); }"
    )
    _frames(page)
    assert (
        page.evaluate("() => getComputedStyle(document.getElementById('mask-layer')).clipPath")
        == "inset(0px 0px 0px 40%)"
    )
    assert page.evaluate("() => performance.getEntriesByName('segserve:draw').length") == draws


def test_sample_photos_and_chinese_chips(page: Page, server_url: str) -> None:
    page.goto(server_url + "/")
    page.wait_for_selector("#samples:not([hidden])")
    samples = page.locator(".sample")
    assert samples.count() == 4
    for i in range(4):
        assert samples.nth(i).locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    samples.nth(1).click()
    page.wait_for_selector("#file-detail:has-text('600 × 400')")
    assert page.inner_text("#file-name") == "coffee.jpg"
    assert page.input_value("#prompt") == "cup"
    for text in ("人", "人,狗", "安全帽"):
        page.click(f".chip[data-prompt='{text}']")
        assert page.input_value("#prompt") == text
