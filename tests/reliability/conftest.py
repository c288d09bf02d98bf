"""The reliability suite: hostile requests, limits and faults, against the real app on 127.0.0.1 or
in-process. Shares the API tests' helpers (api_support.py).

Here: crashes turned 400s (test_crashes), schema fuzzing (test_schema_fuzz), the per-request memory
bound (test_memory), 64-client overload (test_overload), slow and stalled clients (test_slow_clients),
disconnects (test_disconnect). Beside the module they exercise: SIGTERM with work inside and beyond
the grace period (tests/api/test_serve.py), a corrupt OpenVINO cache (tests/engine/test_openvino.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent.parent / "api"))

from api_support import BrightSegmenter, app_client


@pytest.fixture
def client() -> Iterator[TestClient]:
    with app_client(BrightSegmenter()) as c:
        yield c
