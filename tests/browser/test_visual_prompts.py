"""Visual prompts in the playground, in headless Chromium against a real server running the tiny model.

Exemplar boxes dragged with the mouse (Alt for a negative one), undo and remove; single-object clicks
(left positive, right negative) and a dragged box; the coordinates field as the keyboard's way in;
touch taps and a long press. Each change must send the API's fields for it (read from the FormData
the page hands to fetch, since Chromium does not expose a multipart body with a file to the
driver), and the answer must be shown. One screenshot of a drawn exemplar goes to docs/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import open_page
from PIL import Image
from playwright.sync_api import Browser, Page, Route

from segserve.masks import rle_decode

SEGMENT_URL = "/v1/images/segmentation"
DOCS_PICTURE = Path(__file__).resolve().parents[2] / "docs" / "visual-prompts.png"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"

# Every FormData the page passes to fetch, as {field: text} (a file as {"file": name, "size": n}).
RECORD_FETCH = """
window.__sent = [];
const realFetch = window.fetch;
window.fetch = function (url, init) {
  if (init && init.body instanceof FormData) {
    const fields = {};
    for (const [k, v] of init.body.entries()) fields[k] = typeof v === "string" ? v : { file: v.name, size: v.size };
    window.__sent.push(fields);
  }
  return realFetch.apply(this, arguments);
};
"""


def _new_page(browser: Browser, server_url: str, **context_options: Any) -> Iterator[Page]:
    with open_page(browser, server_url + "/", init_script=RECORD_FETCH, **context_options) as pg:
        yield pg


@pytest.fixture
def page(browser: Browser, server_url: str) -> Iterator[Page]:
    yield from _new_page(browser, server_url)


@pytest.fixture
def touch_page(browser: Browser, server_url: str) -> Iterator[Page]:
    # A phone's width: the picture is shown smaller than its pixels, so the mapping is tested too.
    yield from _new_page(browser, server_url, has_touch=True, viewport={"width": 390, "height": 844})


def _open(page: Page, key: str, photo: Path) -> None:
    page.fill("#api-key", key)
    page.set_input_files("#file-input", str(photo))
    # The picture is there to draw on before any Run.
    page.wait_for_selector("#canvas-stack:not([hidden])")
    page.wait_for_function("window.segserve.state.imageSize?.width === 512")


def _mode(page: Page, name: str, tool: str) -> None:
    page.get_by_role("radio", name=name).check()
    assert page.evaluate("() => window.segserve.state.tool") == tool
    assert page.is_visible("#vp-panel")


def _screen(page: Page, x: float, y: float) -> tuple[float, float]:
    """Where image pixel (x, y) is on the screen, with the picture scrolled clear of the sticky top bar."""
    page.eval_on_selector("#prompt-layer", "el => el.scrollIntoView({ block: 'center' })")
    box = page.locator("#prompt-layer").bounding_box()
    assert box is not None
    size = page.evaluate("() => window.segserve.state.imageSize")
    w, h = size["width"], size["height"]
    return box["x"] + x * box["width"] / w, box["y"] + y * box["height"] / h


def _drag(page: Page, a: tuple[float, float], b: tuple[float, float]) -> None:
    page.mouse.move(*_screen(page, *a))
    page.mouse.down()
    page.mouse.move(*_screen(page, *b), steps=6)
    page.mouse.up()


def _answered(page: Page, action: Callable[[], None]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Do `action`, wait for the request it causes (after the page's short debounce) and its answer
    on the page; return the fields sent and the API's JSON."""
    sent_before = page.evaluate("() => window.__sent.length")
    with page.expect_response(lambda r: r.url.endswith(SEGMENT_URL) and r.request.method == "POST") as info:
        action()
    response = info.value
    body = response.json()
    page.wait_for_selector("#run:not([disabled])")
    sent = page.evaluate("() => window.__sent")
    assert len(sent) == sent_before + 1, "one change, one request"
    assert response.status == 200, body
    return sent[-1], body


def _decoded(fields: dict[str, Any]) -> dict[str, Any]:
    """The visual fields as the server reads them from a form: JSON-encoded strings."""
    return {
        k: json.loads(v) for k, v in fields.items() if k in ("boxes", "box_labels", "points", "point_labels", "box")
    }


def _near(got: list[float], want: list[float], tolerance: float = 1) -> bool:
    # A pointer position lands on a whole screen pixel, so a coordinate may be a screen pixel off.
    return len(got) == len(want) and all(abs(g - w) <= tolerance for g, w in zip(got, want, strict=True))


def _assert_shown(page: Page, body: dict[str, Any]) -> None:
    """The answer is on the page: the summary, one row per segment, and colour on the mask layer
    when any mask has a pixel."""
    n = body["num_segments"]
    page.wait_for_function(f"document.querySelectorAll('#segment-list li').length === {n}")
    assert page.inner_text("#summary").startswith(f"{n} object")
    if any(s.get("mask") and rle_decode(s["mask"]).any() for s in body["segments"]):
        page.wait_for_function(
            """() => { const c = document.getElementById('mask-layer');
                 const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true; return false; }"""
        )


def _axe_violations(page: Page, include: list[str]) -> list[dict[str, Any]]:
    """Serious and critical axe-core findings within the `include` selectors (tests/browser/vendor)."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async (include) => {
          const r = await axe.run({ include: include.map((s) => [s]) }, {
            runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
          });
          return r.violations.map((v) => ({ id: v.id, impact: v.impact,
            nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + n.failureSummary) }));
        }""",
        include,
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


def _shapes(page: Page) -> list[dict[str, Any]]:
    """The prompt layer's shapes: kind, sign and geometry in image pixels."""
    return page.evaluate(
        """() => [...document.querySelectorAll('#prompt-layer g.vp:not(.draft)')].map(g => {
             const s = g.querySelector('.vp-shape');
             const n = (a) => Number(s.getAttribute(a));
             const positive = g.classList.contains('pos');
             return s.tagName === 'rect'
               ? { kind: 'box', positive, box: [n('x'), n('y'), n('x') + n('width'), n('y') + n('height')] }
               : { kind: 'point', positive, xy: [n('cx'), n('cy')] };
           })"""
    )


def test_exemplar_boxes_drawn_with_the_mouse(
    page: Page, server_url: str, photo: Path, api_key: str, artifacts_dir: Path
) -> None:
    _open(page, api_key, photo)
    _mode(page, "Find similar (exemplar boxes)", "box")

    # A box around one example, with no text: one exemplar-only concept.
    sent, body = _answered(page, lambda: _drag(page, (100, 80), (300, 400)))
    assert sent["prompt"] == ""
    assert sent["image"] == {"file": "astronaut.png", "size": photo.stat().st_size}
    fields = _decoded(sent)
    assert set(fields) == {"boxes", "box_labels"}
    assert len(fields["boxes"]) == 1 and _near(fields["boxes"][0], [100, 80, 300, 400])
    assert fields["box_labels"] == [1]
    _assert_shown(page, body)
    assert all(s["label"] == "visual" for s in body["segments"])
    first = fields["boxes"][0]
    assert _shapes(page) == [{"kind": "box", "positive": True, "box": first}]
    assert page.input_value("#vp-coords") == "box " + ",".join(str(v) for v in first)

    # Alt-drag: a negative exemplar, drawn red and listed after the first.
    page.keyboard.down("Alt")
    sent, body = _answered(page, lambda: _drag(page, (330, 300), (480, 500)))
    page.keyboard.up("Alt")
    fields = _decoded(sent)
    assert len(fields["boxes"]) == 2 and fields["boxes"][0] == first and _near(fields["boxes"][1], [330, 300, 480, 500])
    assert fields["box_labels"] == [1, 0]
    _assert_shown(page, body)
    assert [s["positive"] for s in _shapes(page)] == [True, False]
    items = page.locator("#vp-list li")
    assert items.count() == 2
    assert "negative box" in (items.nth(1).locator("button").get_attribute("aria-label") or "")

    # The Negative toggle does the same for a plain drag; Ctrl+Z takes it back.
    page.get_by_role("button", name="Negative", exact=True).click()
    assert page.get_attribute("#vp-negative", "aria-pressed") == "true"
    sent, _ = _answered(page, lambda: _drag(page, (20, 20), (90, 120)))
    assert _decoded(sent)["box_labels"] == [1, 0, 0]
    page.get_by_role("button", name="Negative", exact=True).click()
    page.locator("body").focus()
    sent, _ = _answered(page, lambda: page.keyboard.press("Control+z"))
    assert _decoded(sent)["box_labels"] == [1, 0]

    # Each listed prompt has its own remove button; the Undo button brings it back.
    sent, _ = _answered(page, lambda: items.nth(1).get_by_role("button").click())
    assert _decoded(sent) == {"boxes": [first], "box_labels": [1]}
    # The keyboard keeps its place: focus moves to the remaining row's button.
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')").startswith("Remove prompt 1,")
    sent, _ = _answered(page, lambda: page.get_by_role("button", name="Undo", exact=True).click())
    assert _decoded(sent)["box_labels"] == [1, 0]

    # With text too: the boxes are exemplars of the typed concept.
    page.fill("#prompt", "person")
    sent, body = _answered(page, lambda: page.click("#run"))
    assert sent["prompt"] == "person" and _decoded(sent)["box_labels"] == [1, 0]
    _assert_shown(page, body)
    assert all(s["label"] == "person" for s in body["segments"])

    # Clear drops the prompts and the answer that belonged to them.
    page.get_by_role("button", name="Clear", exact=True).click()
    page.wait_for_function("document.getElementById('summary').textContent === 'Result'")
    assert _shapes(page) == [] and items.count() == 0

    _docs_picture(page, artifacts_dir)


def _docs_picture(page: Page, artifacts_dir: Path) -> None:
    """The README's picture: the astronaut, an exemplar box drawn around her face, and the answer
    (three masks at most, so that the box stays in view)."""
    page.fill("#prompt", "")
    page.click(".advanced summary")
    page.fill("#opt-max-segments", "3")
    _, body = _answered(page, lambda: _drag(page, (175, 25), (340, 215)))
    _assert_shown(page, body)
    page.evaluate(
        "() => { const s = document.getElementById('opacity'); s.value = '0.35'; s.dispatchEvent(new Event('input')); }"
    )
    # The tiny model's latency on a test machine tells a reader nothing, and would make the picture
    # differ on every run: the line is left out (hidden, so the layout does not move).
    page.eval_on_selector("#timing", "el => { el.style.visibility = 'hidden'; }")
    page.evaluate("() => window.scrollTo(0, 0)")
    page.mouse.move(0, 0)
    shot = artifacts_dir / "playground-visual-prompts.png"
    page.screenshot(path=str(shot))
    img = Image.open(shot).convert("RGB")
    img.thumbnail((1100, 1100))
    DOCS_PICTURE.parent.mkdir(exist_ok=True)
    img.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(DOCS_PICTURE, optimize=True)
    assert DOCS_PICTURE.stat().st_size < 250_000


def test_single_object_clicks_box_and_coordinates_field(page: Page, photo: Path, api_key: str, tmp_path: Path) -> None:
    _open(page, api_key, photo)
    _mode(page, "Single object (clicks)", "point")
    assert page.is_disabled("#prompt"), "the text prompt has no part in a single-object request"

    # Left click: a positive point, answered by the tracker with one segment.
    sent, body = _answered(page, lambda: page.mouse.click(*_screen(page, 250.5, 200.5)))
    assert sent["prompt"] == ""
    fields = _decoded(sent)
    assert set(fields) == {"points", "point_labels"}
    assert _near(fields["points"][0], [250, 200]) and fields["point_labels"] == [1]
    _assert_shown(page, body)
    assert body["num_segments"] == 1 and body["segments"][0]["label"] == "object"

    # Right click: a negative point.
    sent, body = _answered(page, lambda: page.mouse.click(*_screen(page, 60.5, 450.5), button="right"))
    fields = _decoded(sent)
    assert _near(fields["points"][1], [60, 450]) and fields["point_labels"] == [1, 0]
    _assert_shown(page, body)

    # A drag: the object's box, sent beside the points.
    sent, _ = _answered(page, lambda: _drag(page, (120, 40), (420, 500)))
    fields = _decoded(sent)
    assert _near(fields["box"], [120, 40, 420, 500]) and len(fields["points"]) == 2
    assert [(s["kind"], s["positive"]) for s in _shapes(page)] == [("box", True), ("point", True), ("point", False)]

    # The keyboard's way: type the prompts, Enter applies them.
    coords = page.get_by_label("Coordinates")
    coords.fill("point 256,200; -point 40,40; box 100,60,420,500")
    sent, body = _answered(page, lambda: coords.press("Enter"))
    assert _decoded(sent) == {"points": [[256, 200], [40, 40]], "point_labels": [1, 0], "box": [100, 60, 420, 500]}
    _assert_shown(page, body)
    assert _shapes(page) == [
        {"kind": "box", "positive": True, "box": [100, 60, 420, 500]},
        {"kind": "point", "positive": True, "xy": [256, 200]},
        {"kind": "point", "positive": False, "xy": [40, 40]},
    ]
    assert page.locator("#vp-list .vp-text").all_inner_texts() == [
        "1 · box 100,60,420,500",
        "2 · point 256,200",
        "3 · -point 40,40",
    ]

    # The code panel's SDK snippet is this request: run as written, it gets the same answer.
    page.click("#code-panel summary")
    page.click("#code-panel [data-lang='sdk']")
    code = page.inner_text("#code-text")
    assert "points=[[256,200],[40,40]]" in code and "box=[100,60,420,500]" in code
    workdir = tmp_path / "sdk"
    workdir.mkdir()
    shutil.copy(photo, workdir / photo.name)
    env = {**os.environ, "SEGSERVE_API_KEY": api_key}
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == str({"object": 1})

    # The 3 candidate masks instead of the best one: an option of the request, not a prompt.
    sent, body = _answered(page, lambda: page.get_by_label("Show the 3 candidate masks").check())
    assert sent["multimask"] == "true" and _decoded(sent)["points"] == [[256, 200], [40, 40]]
    assert [s["label"] for s in body["segments"]] == ["object"] * 3
    _assert_shown(page, body)

    # A mistake is named, nothing is sent, and the prompts stay as they were.
    coords.fill("point 256,200; box 10,20")
    coords.press("Enter")
    assert page.get_attribute("#vp-coords", "aria-invalid") == "true"
    assert "box is 4 numbers" in page.inner_text("#vp-coords-error")
    coords.fill("point 600,20")
    coords.press("Enter")
    assert "outside the 512 × 512 image" in page.inner_text("#vp-coords-error")
    assert len(_shapes(page)) == 3

    # The mode switch, the tools, the list and the error meet WCAG 2.2 AA, in light and dark mode.
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        assert _axe_violations(page, [".vp-modes", "#vp-panel"]) == [], scheme

    # Another image starts with no prompts: they were drawn on this one.
    other = tmp_path / "other.png"
    Image.new("RGB", (300, 200), (90, 120, 150)).save(other)
    page.set_input_files("#file-input", str(other))
    page.wait_for_function("window.segserve.state.imageSize?.width === 300")
    page.wait_for_function("document.querySelectorAll('#vp-list li').length === 0")
    assert _shapes(page) == [] and page.input_value("#vp-coords") == ""
    assert page.is_disabled("#vp-undo") and page.is_disabled("#vp-clear")


def test_touch_tap_and_long_press(touch_page: Page, photo: Path, api_key: str, artifacts_dir: Path) -> None:
    page = touch_page
    _open(page, api_key, photo)
    _mode(page, "Single object (clicks)", "point")
    shown = page.locator("#prompt-layer").bounding_box()
    assert shown is not None and shown["width"] < 400, "the picture should be scaled down on a phone"
    tolerance = 1 + 512 / shown["width"]

    sent, body = _answered(page, lambda: page.touchscreen.tap(*_screen(page, 200.5, 300.5)))
    fields = _decoded(sent)
    assert _near(fields["points"][0], [200, 300], tolerance) and fields["point_labels"] == [1]
    _assert_shown(page, body)

    # A long press (held past the page's half second, unmoved) is the touch way to a negative point.
    cdp = page.context.new_cdp_session(page)
    x, y = _screen(page, 400.5, 100.5)

    def long_press() -> None:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        page.wait_for_function("document.querySelector('#prompt-layer g.draft.neg') !== null")
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    sent, _ = _answered(page, long_press)
    fields = _decoded(sent)
    assert _near(fields["points"][1], [400, 100], tolerance) and fields["point_labels"] == [1, 0]
    assert [s["positive"] for s in _shapes(page)] == [True, False]
    page.screenshot(path=str(artifacts_dir / "playground-visual-prompts-phone.png"), full_page=True)


def test_a_change_during_a_request_is_sent_once_it_is_answered(page: Page, photo: Path, api_key: str) -> None:
    """A click while the last click's request is in flight is not lost: it is sent, with every prompt
    so far, once that request is answered (the first request is held back until then)."""
    _open(page, api_key, photo)
    _mode(page, "Single object (clicks)", "point")
    held: list[Route] = []

    def hold(route: Route) -> None:  # the first request waits; any later one goes through
        if held:
            route.continue_()
        else:
            held.append(route)

    page.route(f"**{SEGMENT_URL}", hold)
    with page.expect_request(lambda r: r.url.endswith(SEGMENT_URL)):
        page.mouse.click(*_screen(page, 250.5, 200.5))
    page.mouse.click(*_screen(page, 60.5, 450.5), button="right")
    page.wait_for_function("window.segserve.state.rerun === true")
    assert page.evaluate("() => window.__sent.length") == 1 and len(held) == 1
    held[0].continue_()
    # The held request's answer, then the one that carries both clicks, and its answer.
    page.wait_for_function("window.__sent.length === 2 && !window.segserve.state.controller")
    first, second = page.evaluate("() => window.__sent")
    assert _decoded(first)["point_labels"] == [1]
    assert _decoded(second)["point_labels"] == [1, 0] and len(_decoded(second)["points"]) == 2
    page.wait_for_function("document.querySelectorAll('#segment-list li').length === 1")
