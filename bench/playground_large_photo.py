"""The playground on a 36 MP photo with 40 masks, at two revisions of its code: run -> first draw, and
the median hover / checkbox / opacity interaction (from the event to the next frame), in headless
Chromium. Prints a markdown table.

    python bench/playground_large_photo.py        # the working tree's page vs a5f3cf2's (before issue 14)
    python bench/playground_large_photo.py --before REV --repeats 3

Each revision's src/segserve/web is served as static files (the page needs nothing else: the
segmentation request is answered with a canned 40-mask answer, RLE-encoded by segserve itself, and
/readyz is absent, which the page tolerates). The old page takes ~25 s per interaction at 36 MP, so
the default is 3 repeats (a few minutes). Needs Chromium (/usr/bin/chromium) and Playwright.
"""

from __future__ import annotations

import argparse
import http.server
import importlib.util
import io
import json
import statistics
import subprocess
import tarfile
import tempfile
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]

# The same canned photo and answer as tests/browser/test_large_photo.py (one generator, not two).
_spec = importlib.util.spec_from_file_location("large_case", ROOT / "tests" / "browser" / "test_large_photo.py")
assert _spec and _spec.loader
large_case = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(large_case)

INTERACT = """async ({ repeats, bboxes }) => {
  const frame = () => new Promise((r) => requestAnimationFrame(r));
  const stack = document.getElementById("canvas-stack"), mask = document.getElementById("mask-layer");
  const times = { hover: [], toggle: [], opacity: [] };
  async function measure(kind, act) {
    await frame();
    const t0 = performance.now();
    act();
    await frame();
    times[kind].push(performance.now() - t0);
  }
  const W = window.segserve.state.result.width, H = window.segserve.state.result.height;
  const rect = mask.getBoundingClientRect();
  for (let i = 0; i < repeats; i++) {
    const b = bboxes[(i * 5 + 8) % bboxes.length];
    const x = rect.left + ((b[0] + b[2]) / 2 / W) * rect.width, y = rect.top + ((b[1] + b[3]) / 2 / H) * rect.height;
    const move = new MouseEvent("mousemove", { clientX: x, clientY: y, bubbles: true });
    await measure("hover", () => stack.dispatchEvent(move));
  }
  stack.dispatchEvent(new MouseEvent("mouseleave"));
  await frame();
  const boxes = () => document.querySelectorAll("#segment-list .seg-visible");
  for (let i = 0; i < repeats; i++) await measure("toggle", () => boxes()[i % 10].click());
  const op = document.getElementById("opacity");
  for (let i = 0; i < repeats; i++) {
    await measure("opacity", () => { op.value = String(0.3 + 0.05 * i); op.dispatchEvent(new Event("input")); });
  }
  return times;
}"""

RUN = """async () => {
  const t0 = performance.now();
  document.getElementById("run").click();
  while (!window.segserve.state.result) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}"""


def web_dir(rev: str | None, into: Path) -> Path:
    """src/segserve/web of the working tree (rev None) or of a git revision, extracted into `into`."""
    if rev is None:
        return ROOT / "src" / "segserve" / "web"
    archive = subprocess.run(["git", "archive", rev, "src/segserve/web"], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src" / "segserve" / "web"


def serve(web: Path) -> str:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:
            p = path.split("?")[0]
            if p == "/":
                return str(web / "index.html")
            return str(web / p[len("/static/") :]) if p.startswith("/static/") else str(web / "missing")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_address[1]}/"


def measure(url: str, photo: Path, answer: str, repeats: int) -> dict:
    bboxes = [s["bbox"] for s in json.loads(answer)["segments"]]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.set_default_timeout(1_800_000)
        page.route(
            "**/v1/images/segmentation",
            lambda r: r.fulfill(status=200, headers={"Content-Type": "application/json"}, body=answer),
        )
        page.goto(url)
        page.set_input_files("#file-input", str(photo))
        page.wait_for_selector("#file-detail:has-text('6000 × 6000')")
        first = page.evaluate(RUN)
        times = page.evaluate(INTERACT, {"repeats": repeats, "bboxes": bboxes})
        heap = page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : 0")
        browser.close()
    return {"first": first, **{k: statistics.median(v) for k, v in times.items()}, "heap_mb": heap / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="a5f3cf2", help="git revision of the 'before' page")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photo, answer = large_case.make_case(folder)
        rows = {}
        for name, rev in (("before", args.before), ("after", None)):
            rows[name] = measure(serve(web_dir(rev, folder / name)), photo, answer, args.repeats)
    print(f"| 36 MP, 40 masks (median of {args.repeats}) | before ({args.before}) | after | ratio |")
    print("|---|---|---|---|")
    for key, label in (
        ("first", "Run -> first draw (ms)"),
        ("hover", "hover (ms, to next frame)"),
        ("toggle", "checkbox (ms, to next frame)"),
        ("opacity", "opacity slider (ms, to next frame)"),
        ("heap_mb", "JS heap after (MiB)"),
    ):
        b, a = rows["before"][key], rows["after"][key]
        print(f"| {label} | {b:,.0f} | {a:,.0f} | {a / b:.4f} |")


if __name__ == "__main__":
    main()
