"""The playground's ES modules under Node: `rle.js` decodes what `segserve.masks.rle_encode`
(pycocotools) produces, `render.js` paints the colours and outlines the CLI's overlay uses, and
`zip.js` writes archives Python can read.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segserve.masks import mask_to_box, rle_encode
from segserve.render import mask_edges, palette

WEB = Path(__file__).resolve().parents[2] / "src" / "segserve" / "web"
NODE = shutil.which("node") or "/usr/bin/node"

RLE_SCRIPT = """
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [web, casesPath] = process.argv.slice(1);
const rle = await import(pathToFileURL(web + "/rle.js").href);
const bits = (arr) => Array.from(arr).join("");
const cases = JSON.parse(readFileSync(casesPath, "utf8"));
const out = cases.map(({ counts, h, w }) => {
  const crop = rle.rleToCrop(counts, h, w);
  return {
    decode: rle.rleDecode(counts, h, w).map((row) => row.join("")).join(""),
    mask: bits(rle.rleToMask(counts, h, w)),
    crop: { x: crop.x, y: crop.y, width: crop.width, height: crop.height, area: crop.area,
            data: bits(crop.data) },
  };
});
process.stdout.write(JSON.stringify(out));
"""


def _node(script: str, *args: str) -> Any:
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", script, str(WEB), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _bits(s: str, shape: tuple[int, ...]) -> np.ndarray:
    return (np.frombuffer(s.encode(), np.uint8) == ord("1")).reshape(shape)


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    one = np.zeros((31, 45), bool)
    one[30, 0] = True  # bottom-left corner: the run ends a column
    one_last = np.zeros((513, 769), bool)
    one_last[-1, -1] = True  # a 394k run of zeros first
    ring = np.zeros((99, 141), bool)
    yy, xx = np.mgrid[:99, :141]
    d = (yy - 50) ** 2 + (xx - 70) ** 2
    ring[(d < 40**2) & (d > 25**2)] = True
    wrap = np.zeros((20, 30), bool)
    wrap[15:, 3] = True
    wrap[:4, 4] = True  # one run crossing from column 3 into column 4
    return [
        np.zeros((48, 64), bool),
        np.ones((48, 64), bool),
        np.ones((1, 1), bool),
        np.zeros((1, 1), bool),
        one,
        one_last,
        wrap,
        ring,
        rng.random((1, 23)) < 0.5,
        rng.random((29, 1)) < 0.5,
        rng.random((37, 53)) < 0.5,
        rng.random((101, 99)) < 0.02,
        rng.random((77, 131)) < 0.98,
    ]


def test_rle_js_matches_pycocotools(tmp_path: Path) -> None:
    masks = _masks()
    cases = [{"counts": rle_encode(m)["counts"], "h": m.shape[0], "w": m.shape[1]} for m in masks]
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    results = _node(RLE_SCRIPT, str(tmp_path / "cases.json"))
    for i, (m, got) in enumerate(zip(masks, results)):
        assert (_bits(got["decode"], m.shape) == m).all(), f"rleDecode, case {i}"
        assert (_bits(got["mask"], m.shape) == m).all(), f"rleToMask, case {i}"
        crop = got["crop"]
        assert crop["area"] == int(m.sum()), i
        if not m.any():
            assert (crop["width"], crop["height"], crop["data"]) == (0, 0, ""), i
            continue
        x1, y1, x2, y2 = mask_to_box(m)
        assert (crop["x"], crop["y"], crop["width"], crop["height"]) == (x1, y1, x2 - x1, y2 - y1), i
        assert (_bits(crop["data"], (y2 - y1, x2 - x1)) == m[y1:y2, x1:x2]).all(), f"rleToCrop, case {i}"


def test_rle_js_rejects_garbage() -> None:
    script = """
    const rle = await import(new URL("file://" + process.argv[1] + "/rle.js").href);
    const out = [];
    for (const counts of [btoa("0\\u00ff"), btoa("a")]) {
      try { rle.rleToMask(counts, 2, 2); out.push("ok"); } catch (e) { out.push(e.message); }
    }
    process.stdout.write(JSON.stringify(out));
    """
    out = _node(script)
    assert "invalid character" in out[0]
    assert "middle of a value" in out[1]


RENDER_SCRIPT = """
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [web, casesPath] = process.argv.slice(1);
const rle = await import(pathToFileURL(web + "/rle.js").href);
const render = await import(pathToFileURL(web + "/render.js").href);
const { h, w, counts, opacity } = JSON.parse(readFileSync(casesPath, "utf8"));
const segments = counts.map((c, index) => ({ index, crop: rle.rleToCrop(c, h, w) }));
const layer = render.composeMaskLayer(segments, w, h, { opacity, lineWidth: 1 });
process.stdout.write(JSON.stringify({ palette: render.palette(40), layer: Array.from(layer) }));
"""


@pytest.mark.parametrize("opacity", [0.5, 0.8])
def test_mask_layer_and_palette_match_the_cli_overlay(tmp_path: Path, opacity: float) -> None:
    h, w = 41, 57
    yy, xx = np.mgrid[:h, :w]
    masks = np.stack(
        [
            (yy - 20) ** 2 + (xx - 20) ** 2 < 12**2,  # id 1, on top where it overlaps id 2
            (yy > 5) & (yy < 35) & (xx > 25) & (xx < 56),
            (yy == 0) | (xx == w - 1),  # touches the image border: all of it is outline
        ]
    )
    case = {"h": h, "w": w, "counts": [rle_encode(m)["counts"] for m in masks], "opacity": opacity}
    (tmp_path / "case.json").write_text(json.dumps(case))
    out = _node(RENDER_SCRIPT, str(tmp_path / "case.json"))
    assert [tuple(c) for c in out["palette"]] == palette(40)

    layer = np.array(out["layer"], np.uint8).reshape(h, w, 4)
    colors = np.array(palette(len(masks)), np.uint8)
    want = np.zeros((h, w, 4), np.uint8)
    for i in reversed(range(len(masks))):  # the highest confidence is drawn last, on top
        m = masks[i]
        want[m, :3] = colors[i]
        want[m, 3] = round(opacity * 255)
        want[mask_edges(m), 3] = 255
    assert (layer == want).all(), np.argwhere((layer != want).any(-1))[:5]


def test_zip_js_writes_a_readable_archive() -> None:
    script = """
    const { makeZip, crc32 } = await import(new URL("file://" + process.argv[1] + "/zip.js").href);
    const enc = new TextEncoder();
    const zip = makeZip([
      { name: "a.txt", data: enc.encode("hello") },
      { name: "dir/ü.bin", data: new Uint8Array([0, 1, 2, 255]) },
      { name: "empty", data: new Uint8Array(0) },
    ]);
    process.stdout.write(JSON.stringify({ zip: Buffer.from(zip).toString("base64"),
                                          crc: crc32(enc.encode("123456789")) }));
    """
    out = _node(script)
    assert out["crc"] == 0xCBF43926  # the CRC-32 check value
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(out["zip"]))) as zf:
        assert zf.testzip() is None
        assert zf.namelist() == ["a.txt", "dir/ü.bin", "empty"]
        assert zf.read("a.txt") == b"hello"
        assert zf.read("dir/ü.bin") == bytes([0, 1, 2, 255])
        assert zf.read("empty") == b""
