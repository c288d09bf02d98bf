"""Our RLE on the wire decodes with the reference document's own JavaScript `rleDecode`.

`tests/js/reference_rle_decode.mjs` is that function copied verbatim (type annotations removed);
Node runs it on `segserve.masks.rle_encode` output and must give back the very same masks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

from segserve.masks import rle_encode

REFERENCE = Path(__file__).parent / "js" / "reference_rle_decode.mjs"
NODE = shutil.which("node") or "/usr/bin/node"

SCRIPT = """
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const [modulePath, casesPath] = process.argv.slice(1);
const { rleDecode } = await import(pathToFileURL(modulePath).href);
const cases = JSON.parse(readFileSync(casesPath, "utf8"));
const out = cases.map((c) => rleDecode(c.counts, c.h, c.w).map((row) => row.join("")).join(""));
process.stdout.write(JSON.stringify(out));
"""


def _cases() -> list[np.ndarray]:
    rng = np.random.default_rng(42)
    one_mid = np.zeros((37, 53), bool)
    one_mid[18, 26] = True
    one_last = np.zeros((480, 640), bool)
    one_last[-1, -1] = True  # one long run of zeros (~300k) before it: multi-group counts
    blob = np.zeros((301, 207), bool)
    yy, xx = np.mgrid[:301, :207]
    blob[(yy - 150) ** 2 + (xx - 90) ** 2 < 70**2] = True
    return [
        np.zeros((64, 48), bool),  # empty
        np.ones((64, 48), bool),  # full
        np.ones((1, 1), bool),
        np.zeros((1, 1), bool),
        one_mid,
        one_last,
        np.eye(9, 13, dtype=bool),
        rng.random((1, 17)) < 0.5,  # one row
        rng.random((19, 1)) < 0.5,  # one column
        rng.random((37, 53)) < 0.5,  # odd sizes, noisy
        rng.random((101, 99)) < 0.03,  # sparse
        rng.random((77, 131)) < 0.97,  # dense
        blob,
    ]


def _decode_with_node(module: Path, masks: list[np.ndarray], tmp_path: Path) -> list[np.ndarray]:
    cases = []
    for m in masks:
        rle = rle_encode(m)
        cases.append({"h": rle["size"][0], "w": rle["size"][1], "counts": rle["counts"]})
    cases_path = tmp_path / "cases.json"
    cases_path.write_text(json.dumps(cases))
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", SCRIPT, str(module), str(cases_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    flat = json.loads(proc.stdout)
    return [np.frombuffer(s.encode(), np.uint8).reshape(m.shape) == ord("1") for s, m in zip(flat, masks)]


def test_reference_rle_decode_reads_our_rle(tmp_path: Path) -> None:
    masks = _cases()
    decoded = _decode_with_node(REFERENCE, masks, tmp_path)
    for i, (want, got) in enumerate(zip(masks, decoded)):
        assert got.shape == want.shape, i
        assert (got == want).all(), f"case {i} ({want.shape}) differs in {(got != want).sum()} pixels"
