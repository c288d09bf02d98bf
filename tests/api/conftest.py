"""Fixtures for the API tests (helpers live in api_support.py, importable by name)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

# The suite runs with --import-mode=importlib, which puts no test folder on sys.path; the API tests
# share their fakes and helpers through api_support.py beside this file.
sys.path.insert(0, str(Path(__file__).parent))

from api_support import BrightSegmenter, app_client


@pytest.fixture
def bright():
    return BrightSegmenter()


@pytest.fixture
def client(bright) -> Iterator[TestClient]:
    with app_client(bright) as c:
        yield c
