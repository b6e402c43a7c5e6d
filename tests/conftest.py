"""Shared test fixtures: where the read-only reference data lives, and skips when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"


def shared_path(*parts: str) -> Path:
    """Path under ../shared, or skip the test (with the reason) where it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data not available: {path} (only present in the development tree)")
    return path


@pytest.fixture
def fixtures_dir() -> Path:
    return shared_path("fixtures")


@pytest.fixture
def shared_data() -> Path:
    return shared_path("data")
