"""The one way these tests run JavaScript: `node(modules, body, cases)` imports ES modules into Node,
runs `body` on the JSON `cases` and hands back what it returns, through JSON.

The playground's modules (`src/segserve/web/*.js`) are named by file name; the reference
document's decoder (reference_rle_decode.mjs beside this file) by its path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

WEB = Path(__file__).resolve().parents[2] / "src" / "segserve" / "web"
NODE = shutil.which("node") or "/usr/bin/node"

# `m` holds the imported modules by the names the test gave them; `cases` arrives on stdin.
_SCRIPT = """
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
const m = {};
for (const [name, path] of Object.entries(JSON.parse(process.argv[1]))) {
  m[name] = await import(pathToFileURL(path).href);
}
const cases = JSON.parse(readFileSync(0, "utf8"));
const run = async (m, cases) => {
__BODY__
};
process.stdout.write(JSON.stringify(await run(m, cases)));
"""


def run_node(modules: dict[str, str | Path], body: str, cases: Any = None) -> Any:
    """Import `modules` (name -> a file of src/segserve/web, or a path) as `m.<name>`, run the async
    function body `body` with `m` and `cases`, and return its JSON-decoded result."""
    paths = {name: str(WEB / where if isinstance(where, str) else where) for name, where in modules.items()}
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", _SCRIPT.replace("__BODY__", body), json.dumps(paths)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def node() -> Callable[..., Any]:
    return run_node
