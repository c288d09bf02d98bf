"""The README runs as written (issue 14.2): every fenced bash/python block of README.md, in order, in
one fresh directory, against the tiny model, so the examples can't rot.

The conventions (README.md states the model rule near its top):
- The real checkpoint is swapped for the tiny one: every block runs with `SEGSERVE_MODEL=tiny-sam3`
  and with `facebook/sam3` replaced by `tiny-sam3` in its text; the quickstart makes `tiny-sam3`
  and `astronaut.jpg` in the directory, as a reader would.
- `<!-- readme-test: skip (reason) -->` right before a fence skips that block; the reason is
  required, and pytest lists each skipped block with it (`pytest -rs`).
- `<!-- readme-test: server -->` right before a fence: the block talks to
  `SEGSERVE_MODEL=tiny-sam3 segserve serve --no-auth`, which this test starts (once, in the same
  directory) on a free port; `127.0.0.1:8000` / `localhost:8000` in the block are rewritten to it.
- Other fence languages (json, text, ...) are not run. Nothing downloads: HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

sys.path.insert(0, str(Path(__file__).parent / "api"))
from serving import free_port, serve_command, server_env, start, stop, wait_for

README = Path(__file__).parents[1] / "README.md"
RUN_LANGUAGES = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
MARKER = re.compile(r"<!--\s*readme-test:\s*(?P<kind>[\w-]+)\s*(?:\((?P<reason>[^)]*)\))?\s*-->")
TINY = "tiny-sam3"
BLOCK_TIMEOUT = 300  # seconds; a block that hangs (a blocking server left unmarked) fails, not stalls


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    language: str  # "bash" or "python"
    code: str
    marker: str | None  # "skip", "server" or None
    reason: str | None

    @property
    def id(self) -> str:
        return f"L{self.line}-{self.language}"


def readme_blocks(text: str) -> list[Block]:
    tokens = MarkdownIt("commonmark").parse(text)
    blocks = []
    for i, token in enumerate(tokens):
        language = RUN_LANGUAGES.get(token.info.strip().split(" ")[0]) if token.type == "fence" else None
        if language is None:
            continue
        marker = reason = None
        before = tokens[i - 1] if i else None
        if before is not None and before.type == "html_block" and (found := MARKER.search(before.content)):
            marker, reason = found["kind"], (found["reason"] or "").strip() or None
        blocks.append(Block(token.map[0] + 1, language, token.content, marker, reason))
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_the_markers_are_well_formed():
    assert [b for b in BLOCKS if b.marker != "skip"], "no README block runs"
    for block in BLOCKS:
        assert block.marker in (None, "skip", "server"), f"README line {block.line}: unknown marker {block.marker!r}"
        if block.marker == "skip":
            assert block.reason, f"README line {block.line}: a skip needs its reason: readme-test: skip (why)"
    tokens = MarkdownIt("commonmark").parse(README.read_text(encoding="utf-8"))
    for token, after in zip(tokens, [*tokens[1:], None], strict=True):
        if token.type == "html_block" and MARKER.search(token.content):
            where = f"README line {token.map[0] + 1}"
            assert after is not None and after.type == "fence", f"{where}: a marker must come right before a fence"
            assert after.info.strip().split(" ")[0] in RUN_LANGUAGES, f"{where}: marks a block that never runs"


class _Server:
    """The tiny-model server the `server` blocks talk to, started at the first one."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.proc, self.port = workdir, None, 0

    def url(self) -> str:
        if self.proc is None:
            assert (self.workdir / TINY).is_dir(), f"the README must make {TINY} before its first server block"
            self.port = free_port()
            env = server_env(SEGSERVE_MODEL=TINY)
            self.proc = start(serve_command(self.port, "--no-auth"), env, self.workdir)
            wait_for(f"http://127.0.0.1:{self.port}/readyz", self.proc)
        return f"127.0.0.1:{self.port}"

    def stop(self) -> str:
        return stop(self.proc)[1] if self.proc is not None else ""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme")


@pytest.fixture(scope="module")
def server(workdir):
    running = _Server(workdir)
    yield running
    running.stop()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGSERVE_")}
    # `python` and `segserve` in a block are this interpreter's, as after the README's install.
    bindir = os.path.dirname(sys.executable)
    entry = shutil.which("segserve")
    path = [bindir, *([os.path.dirname(entry)] if entry else []), env.get("PATH", "")]
    env.update({"PATH": os.pathsep.join(path), "SEGSERVE_MODEL": TINY, "HF_HUB_OFFLINE": "1"})
    return env


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_readme_block_runs_as_written(block: Block, workdir: Path, server: _Server):
    if block.marker == "skip":
        pytest.skip(f"README line {block.line}: {block.reason}")
    code = block.code.replace("facebook/sam3", TINY)
    if block.marker == "server":
        code = re.sub(r"(127\.0\.0\.1|localhost):8000", server.url(), code)
    command = ["bash", "-euo", "pipefail", "-c", code] if block.language == "bash" else [sys.executable, "-c", code]
    try:
        proc = subprocess.run(command, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"README line {block.line}: still running after {BLOCK_TIMEOUT} s (a blocking command?)")
    print(f"README line {block.line}:\n{proc.stdout[-2000:]}")  # shown with pytest -s
    assert proc.returncode == 0, (
        f"README line {block.line} ({block.language}) exited {proc.returncode}\n--- code\n{code}"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    )
