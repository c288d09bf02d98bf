"""`segserve segment` end to end with the tiny model, and its failures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from segserve.cli import main
from segserve.masks import rle_decode


@pytest.fixture
def photo(tmp_path, rgb_image):
    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb_image).save(path, quality=95)
    return path


def test_segment_writes_json_cutouts_and_overlay(tiny_model_path, photo, tmp_path, capsys):
    out_json, cut_dir, overlay = tmp_path / "out.json", tmp_path / "cutouts", tmp_path / "overlay.png"
    code = main(
        [
            "segment", str(photo), "-p", "cat, dog", "--model", str(tiny_model_path), "--device", "cpu",
            "--threshold", "0.25", "--json", str(out_json), "--cutout", str(cut_dir), "--overlay", str(overlay),
        ]
    )  # fmt: skip
    assert code == 0
    data = json.loads(out_json.read_text())
    assert data["num_segments"] == len(data["segments"]) > 0
    for seg in data["segments"]:
        assert seg["label"] in {"cat", "dog"}
        mask = rle_decode(seg["mask"])
        assert mask.shape == (90, 130) and mask.any()
        x1, y1, x2, y2 = seg["bbox"]
        assert 0 <= x1 < x2 <= 130 and 0 <= y1 < y2 <= 90
    cutouts = sorted(cut_dir.glob("*.png"))
    assert len(cutouts) == data["num_segments"]
    first = Image.open(cutouts[0])
    assert first.mode == "RGBA"
    x1, y1, x2, y2 = data["segments"][0]["bbox"]
    assert first.size == (x2 - x1, y2 - y1)
    alpha = np.asarray(first)[:, :, 3]
    expected = rle_decode(data["segments"][0]["mask"])[y1:y2, x1:x2]
    np.testing.assert_array_equal(alpha == 255, expected)
    assert Image.open(overlay).size == (130, 90)
    printed = capsys.readouterr().out
    assert "segments" in printed and "cat" in printed and "confidence" in printed


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    exe = shutil.which("segserve")
    cmd = [exe, *args] if exe else [sys.executable, "-m", "segserve.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


@pytest.mark.parametrize(
    ("model", "env", "expected"),
    [
        ("/nonexistent/sam3", {}, "No SAM 3 checkpoint directory"),  # wrong local path
        ("facebook/sam3", {"HF_HUB_OFFLINE": "1"}, "hf auth login"),  # no network / not logged in / gated
    ],
)
def test_unavailable_model_exits_nonzero_with_what_to_do(photo, model, env, expected):
    proc = _run(["segment", str(photo), "-p", "cat", "--model", model], **env)
    assert proc.returncode != 0
    assert expected in proc.stderr and "SEGSERVE_MODEL" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_image_file_is_a_clear_error(tmp_path):
    proc = _run(["segment", str(tmp_path / "nope.jpg"), "-p", "cat"])
    assert proc.returncode != 0 and "no such image file" in proc.stderr


def test_help_lists_the_commands():
    proc = _run(["--help"])
    assert proc.returncode == 0 and "segment" in proc.stdout and "serve" in proc.stdout


# --- the base install: no server extra ----------------------------------------------------------

# Runs the CLI in a fresh interpreter where the server's packages cannot be imported, as on an
# install without the [server] extra, and reports which heavy modules were imported.
BASE_INSTALL = """
import importlib.abc, json, sys
class NoServer(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"fastapi", "uvicorn", "starlette", "multipart", "python_multipart"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NoServer())
from segserve.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # --help exits through argparse
    code = exc.code
heavy = ("torch", "fastapi", "jieba", "opencc")
print(json.dumps({"code": code, **{name: name in sys.modules for name in heavy}}), file=sys.stderr)
"""


def _base_install(*args: str) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run(
        [sys.executable, "-c", BASE_INSTALL, *args], capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("SEGSERVE_")},
    )  # fmt: skip
    return proc, json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["segment", "--help"], ["serve", "--help"], ["annotate", "--help"]])
def test_help_loads_neither_torch_nor_the_server(argv):
    proc, seen = _base_install(*argv)
    # jieba's dictionary alone takes ~1 s to load: it waits for the first Chinese prompt.
    assert seen == {"code": 0, "torch": False, "fastapi": False, "jieba": False, "opencc": False}, proc.stderr
    assert "usage: segserve" in proc.stdout


def test_segment_runs_without_the_server_extra(tiny_model_path, photo, tmp_path):
    out = tmp_path / "out.json"
    argv = ["segment", str(photo), "-p", "cat", "--model", str(tiny_model_path), "--threshold", "0", "--json", str(out)]
    proc, seen = _base_install(*argv)
    assert seen["code"] == 0 and not seen["fastapi"], proc.stderr
    assert json.loads(out.read_text())["num_segments"] > 0


def test_serve_without_the_server_extra_says_how_to_install_it():
    proc, seen = _base_install("serve", "--no-auth")
    assert seen["code"] == 2
    assert "[server] extra" in proc.stderr and "pip install -e '.[server]'" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- one line per error, exit 2 for the command line, 1 for the work ------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "code", "says"),
    [
        (["segment", "{photo}", "--threshold", "-1"], {}, 2, "--threshold: "),  # out of range
        (["segment", "{photo}", "--max-segments", "-3"], {}, 2, "--max-segments: "),  # below 1
        (["segment", "{photo}", "--mask-threshold", "nan"], {}, 2, "--mask-threshold: "),  # NaN
        (["segment", "{photo}", "-p", ",".join(f"c{i}" for i in range(17))], {}, 2, "17 concepts"),  # too many concepts
        (["segment", "{photo}", "--device", "cuda"], {}, 2, "--device: "),  # no GPU on this machine
        (["segment", "{photo}", "--device", "tpu"], {}, 2, "--device: Unknown device"),  # not a device
        (["segment", "{tmp}/missing.jpg"], {}, 2, "no such image file"),  # a path that is not there
        (["segment", "{photo}"], {"SEGSERVE_THRESHOLD": "7"}, 2, "SEGSERVE_THRESHOLD: "),  # a bad setting
        (["segment", "{photo}", "--model", "{tmp}/nope"], {}, 1, "No SAM 3 checkpoint directory"),  # no model
        (["segment", "{tmp}/text.jpg", "-p", "cat"], {}, 1, "not a decodable image"),  # not an image
        (["serve", "--api-keys-file", "{tmp}/keys.txt"], {}, 2, "--api-keys-file: no such file"),  # no file
        (["serve", "--no-auth", "--device", "cuda"], {}, 2, "--device: "),  # no GPU, before serving
        (["serve", "--no-auth", "--max-queue", "-1"], {}, 2, "--max-queue: "),  # a negative queue
        (["serve", "--no-auth", "--port", "70000"], {}, 2, "--port: "),  # not a port
    ],
)  # fmt: skip
def test_every_error_is_one_line_with_the_right_exit_code(photo, tmp_path, argv, env, code, says):
    if torch_has_cuda() and "cuda" in argv:
        pytest.skip("this machine has a GPU")
    (tmp_path / "text.jpg").write_text("not an image")
    args = [a.format(photo=photo, tmp=tmp_path) for a in argv]
    proc = _run(args, HF_HUB_OFFLINE="1", **env)  # never a hub lookup, whatever goes wrong
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and lines[0].startswith(f"segserve {argv[0]}: error: "), lines


def torch_has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# --- Chinese prompts ------------------------------------------------------------------------------
def test_unknown_chinese_words_say_which_and_how_to_add_them(photo):
    proc = _run(["segment", str(photo), "-p", "人, 魔法车", "--model", "/nonexistent/sam3"])
    assert proc.returncode == 2  # refused before any model loads
    assert "--prompt: Unknown Chinese words: 魔法" in proc.stderr and "SEGSERVE_GLOSSARY" in proc.stderr


def test_a_bad_glossary_is_a_usage_error_naming_its_lines(photo, tmp_path):
    glossary = tmp_path / "glossary.tsv"
    glossary.write_text("魔法车\tmagic car\n魔法车 magic car\n", encoding="utf-8")
    argv = ["segment", str(photo), "-p", "魔法车", "--model", "/nonexistent/sam3"]
    proc = _run(argv, SEGSERVE_GLOSSARY=str(glossary))
    assert proc.returncode == 2 and "SEGSERVE_GLOSSARY" in proc.stderr and "line 2:" in proc.stderr


def test_chinese_prompt_runs_with_chinese_labels_in_the_json(tiny_model_path, photo, tmp_path):
    glossary = tmp_path / "glossary.tsv"
    glossary.write_text("魔法车\tmagic car\n", encoding="utf-8")
    out = tmp_path / "out.json"
    argv = ["segment", str(photo), "-p", "人，魔法车", "--model", str(tiny_model_path), "--threshold", "0"]
    proc = _run([*argv, "--max-segments", "4", "--json", str(out)], SEGSERVE_GLOSSARY=str(glossary))
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(out.read_text())
    assert answer["concepts"] == [{"label": "人", "text": "person"}, {"label": "魔法车", "text": "magic car"}]
    assert {seg["label"] for seg in answer["segments"]} <= {"人", "魔法车"}
