"""The reliability suite: hostile requests, limits and faults, against the real app on 127.0.0.1 or
in-process. Shares the API tests' helpers (api_support.py)."""

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
