"""The playground in headless Chromium against a real server running the tiny model.

Upload -> prompt -> Run, then: the list matches the API's answer, the mask layer has each mask's
colour exactly where the decoded mask is 1 and nothing where it is 0, the downloads are what they
claim (PNG cutouts with alpha, overlay, JSON, ZIP), a wrong key shows the API's 401 message, and
the page never asks any host but the server for anything.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from browser_support import open_page
from PIL import Image
from playwright.sync_api import Browser, Page

from segserve.masks import rle_decode
from segserve.render import mask_edges, palette

SEGMENT_URL = "/v1/images/segmentation"


@pytest.fixture
def page(browser: Browser, server_url: str) -> Iterator[Page]:
    """A fresh page (own storage) whose every request URL is recorded in `page.requested`."""
    requested: list[str] = []

    def record(context, pg) -> None:
        context.on("request", lambda req: requested.append(req.url))
        pg.requested = requested  # type: ignore[attr-defined]

    with open_page(browser, server_url + "/", accept_downloads=True, before_load=record) as pg:
        yield pg


def _assert_only_own_origin(requested: list[str], server_url: str) -> None:
    origin = urlsplit(server_url)
    assert requested, "no requests were recorded"
    for url in requested:
        parts = urlsplit(url)
        if parts.scheme in ("blob", "data"):  # in-page objects (downloads), not network requests
            continue
        assert (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc), f"request to another host: {url}"


def _next_frames(page: Page) -> None:
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")


def _canvas_rgba(page: Page, selector: str) -> np.ndarray:
    url = page.eval_on_selector(selector, "c => c.toDataURL('image/png')")
    png = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA")).astype(np.int16)


def _expected_layer(masks: np.ndarray, indices: list[int], opacity: float) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) colour and (H, W) alpha of the mask layer when the segments `indices` are shown."""
    h, w = masks.shape[1:]
    rgb = np.zeros((h, w, 3), np.int16)
    alpha = np.zeros((h, w), np.int16)
    colors = palette(len(masks))
    for i in sorted(indices, reverse=True):  # the highest confidence (lowest index) ends on top
        m = masks[i]
        rgb[m] = colors[i]
        alpha[m] = round(opacity * 255)
        alpha[mask_edges(m)] = 255
    return rgb, alpha


def _assert_layer(layer: np.ndarray, rgb: np.ndarray, alpha: np.ndarray) -> None:
    off = alpha == 0
    assert (layer[off, 3] == 0).all(), f"{int((layer[off, 3] != 0).sum())} pixels coloured where every mask is 0"
    on = ~off
    assert on.any()
    assert (np.abs(layer[on, 3] - alpha[on]) <= 1).all(), "mask opacity / outline alpha differ"
    # The canvas stores premultiplied alpha: half-transparent colours come back within a few levels.
    diff = np.abs(layer[on, :3] - rgb[on]).max(axis=-1)
    assert (diff <= 3).all(), f"{int((diff > 3).sum())} mask pixels have the wrong colour"


def _run(page: Page, key: str, photo: Path, prompt: str) -> tuple[int, dict]:
    page.fill("#api-key", key)
    page.set_input_files("#file-input", str(photo))
    page.wait_for_selector(".dropzone-file:not([hidden])")
    page.fill("#prompt", prompt)
    # Watch the Run button and the progress bar from inside the page, however fast the answer is.
    page.evaluate(
        """() => {
          const run = document.getElementById("run"), progress = document.getElementById("progress");
          window.__busy = { disabled: false, progress: false };
          new MutationObserver(() => {
            if (run.disabled) window.__busy.disabled = true;
            if (!progress.hidden) window.__busy.progress = true;
          }).observe(document.body, { attributes: true, subtree: true });
        }"""
    )
    with page.expect_response(lambda r: r.url.endswith(SEGMENT_URL) and r.request.method == "POST") as info:
        page.click("#run")
    response = info.value
    body = response.json()
    page.wait_for_selector("#run:not([disabled])")
    assert page.evaluate("() => window.__busy") == {"disabled": True, "progress": True}
    assert page.is_hidden("#progress")
    return response.status, body


def test_upload_prompt_run_and_download(
    page: Page, server_url: str, photo: Path, artifacts_dir: Path, api_key: str
) -> None:
    status, body = _run(page, api_key, photo, "person")
    assert status == 200, body
    n = body["num_segments"]
    assert n > 0, "the tiny model at threshold 0.2 should find something"
    assert page.is_hidden("#error")

    # The list and the counts.
    rows = page.locator("#segment-list li")
    assert rows.count() == n == len(body["segments"])
    assert page.inner_text("#summary") == f"{n} object{'s' * (n != 1)}"
    assert page.inner_text("#label-counts").split() == ["person", str(n)]
    ids = [int(rows.nth(i).get_attribute("data-id")) for i in range(n)]
    assert ids == [s["id"] for s in body["segments"]]

    # The picture: the photo, and over it each mask in its colour where the decoded mask is 1.
    photo_rgb = np.asarray(Image.open(photo).convert("RGB")).astype(np.int16)
    shown = _canvas_rgba(page, "#image-layer")
    assert shown.shape[:2] == photo_rgb.shape[:2]
    assert np.abs(shown[..., :3] - photo_rgb).max() <= 2
    masks = np.stack([rle_decode(s["mask"]) for s in body["segments"]])
    _next_frames(page)
    page.mouse.move(0, 0)
    _next_frames(page)
    _assert_layer(_canvas_rgba(page, "#mask-layer"), *_expected_layer(masks, list(range(n)), 0.5))

    # Checkboxes: hide everything, then show only the last segment, at another opacity.
    page.evaluate(
        "() => { const s = document.getElementById('opacity'); s.value = '0.8'; s.dispatchEvent(new Event('input')); }"
    )
    page.click("#toggle-all")
    _next_frames(page)
    assert (_canvas_rgba(page, "#mask-layer")[..., 3] == 0).all()
    last = n - 1
    page.locator(f"#segment-list li[data-id='{last + 1}'] .seg-visible").evaluate("el => el.click()")
    page.mouse.move(0, 0)
    _next_frames(page)
    _assert_layer(_canvas_rgba(page, "#mask-layer"), *_expected_layer(masks, [last], 0.8))
    page.click("#toggle-all")  # everything back on
    _next_frames(page)

    # The confidence slider filters the list without a new request.
    posts_before = sum(1 for u in page.requested if u.endswith(SEGMENT_URL))  # type: ignore[attr-defined]
    confidences = sorted(s["confidence"] for s in body["segments"])
    cut = confidences[len(confidences) // 2]
    value = page.evaluate(
        "v => { const s = document.getElementById('min-confidence'); s.value = String(v);"
        " s.dispatchEvent(new Event('input')); return Number(s.value); }",
        cut,
    )
    kept = sum(c >= value - 1e-9 for c in confidences)
    assert rows.count() == kept
    if kept < n:
        assert page.inner_text("#summary") == f"{kept} object{'s' * (kept != 1)} (of {n})"
    page.evaluate(
        "() => { const s = document.getElementById('min-confidence'); s.value = '0';"
        " s.dispatchEvent(new Event('input')); }"
    )
    assert rows.count() == n
    assert sum(1 for u in page.requested if u.endswith(SEGMENT_URL)) == posts_before  # type: ignore[attr-defined]

    # Downloads. One segment's cutout: a PNG with alpha, the box of the photo, opaque exactly on the mask.
    seg = body["segments"][0]
    with page.expect_download() as dl:
        page.click(f"#segment-list li[data-id='{seg['id']}'] .seg-cutout")
    data = Path(dl.value.path()).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    cut_img = Image.open(io.BytesIO(data))
    assert cut_img.mode == "RGBA"
    x1, y1, x2, y2 = seg["bbox"]
    assert cut_img.size == (x2 - x1, y2 - y1)
    rgba = np.asarray(cut_img).astype(np.int16)
    crop = masks[0][y1:y2, x1:x2]
    assert (rgba[..., 3] == np.where(crop, 255, 0)).all()
    assert np.abs(rgba[crop][:, :3] - photo_rgb[y1:y2, x1:x2][crop]).max() <= 2
    cut_img.save(artifacts_dir / "playground-cutout.png")

    # All of them, as a ZIP of such PNGs.
    with page.expect_download() as dl:
        page.click("#dl-cutouts")
    with zipfile.ZipFile(dl.value.path()) as zf:
        names = zf.namelist()
        assert len(names) == n
        for name in names:
            img = Image.open(io.BytesIO(zf.read(name)))
            assert img.format == "PNG" and img.mode == "RGBA", name

    # The JSON answer, byte for byte what the API said.
    with page.expect_download() as dl:
        page.click("#dl-json")
    assert json.loads(Path(dl.value.path()).read_text()) == body

    # The overlay: the photo's size, coloured where the masks are.
    with page.expect_download() as dl:
        page.click("#dl-overlay")
    overlay = Image.open(dl.value.path())
    assert overlay.format == "PNG" and overlay.size == (photo_rgb.shape[1], photo_rgb.shape[0])
    overlay.save(artifacts_dir / "playground-overlay.png")

    desktop = artifacts_dir / "playground-desktop.png"
    page.screenshot(path=str(desktop), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    phone = artifacts_dir / "playground-phone.png"
    page.screenshot(path=str(phone), full_page=True)
    print(f"\nscreenshots: {desktop} {phone}")

    _assert_only_own_origin(page.requested, server_url)  # type: ignore[attr-defined]


def test_errors_are_shown_on_the_page(page: Page, server_url: str, photo: Path, artifacts_dir: Path) -> None:
    page.click("#run")
    assert page.is_visible("#error")
    assert "image" in page.inner_text("#error-message").lower()

    status, body = _run(page, "wrong-key", photo, "dog,cat")
    assert status == 401
    message = body["error"]["message"]
    assert message
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error-message") == message
    assert "401" in page.inner_text("#error-title")
    assert "API key" in page.inner_text("#error-hint")
    assert page.locator("#segment-list li").count() == 0
    page.screenshot(path=str(artifacts_dir / "playground-401.png"))

    # The key is kept in local storage for the next visit.
    page.reload()
    assert page.input_value("#api-key") == "wrong-key"

    _assert_only_own_origin(page.requested, server_url)  # type: ignore[attr-defined]


def test_drop_and_paste_an_image(page: Page, server_url: str) -> None:
    """Drag-and-drop and paste take an image file too (the events carry a PNG drawn in the page)."""
    make_event = """([type, name]) => {
      const c = document.createElement("canvas");
      c.width = 40; c.height = 30;
      c.getContext("2d").fillRect(0, 0, 20, 15);
      const bin = atob(c.toDataURL("image/png").split(",")[1]);
      const bytes = Uint8Array.from(bin, (ch) => ch.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], name, { type: "image/png" }));
      const event = type === "drop"
        ? new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true })
        : new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true });
      (type === "drop" ? document.getElementById("dropzone") : document.body).dispatchEvent(event);
    }"""
    page.evaluate(make_event, ["drop", "dropped.png"])
    page.wait_for_selector("#file-detail:has-text('40 × 30')")
    assert page.inner_text("#file-name") == "dropped.png"
    page.evaluate(make_event, ["paste", "clip.png"])
    page.wait_for_function("document.getElementById('file-name').textContent === 'clip.png'")
    assert page.is_visible("#image-layer")
    _assert_only_own_origin(page.requested, server_url)  # type: ignore[attr-defined]
