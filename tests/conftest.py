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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors run faster (and reproducibly) on one thread; restore the setting after."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fixtures_dir() -> Path:
    return shared_path("fixtures")


@pytest.fixture
def shared_data() -> Path:
    return shared_path("data")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """The demo DAG run to completion once, in a private copy of the workflow."""
    from tests.workflow_helpers import copy_workflow, snakemake

    work = copy_workflow(tmp_path_factory.mktemp("demo"))
    snakemake(["--cores", "2"], cwd=work, timeout=1500)
    return work
