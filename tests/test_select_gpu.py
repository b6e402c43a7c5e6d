"""Herding and K-Center on CUDA give the CPU's selection (float64 on both)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idc.select import SELECTORS, select_in_splits

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("method", ["herding", "kcenter"])
def test_cuda_matches_cpu(method: str) -> None:
    features = np.random.default_rng(0).normal(size=(6_000, 60)).astype(np.float32)
    on_cpu = SELECTORS[method](features, 600, rng=np.random.default_rng(1), device="cpu")
    on_gpu = SELECTORS[method](features, 600, rng=np.random.default_rng(1), device="cuda")
    assert np.array_equal(on_cpu, on_gpu)


def test_cuda_split_protocol_pixels() -> None:
    pixels = np.random.default_rng(2).random(size=(2_000, 64 * 64 * 3), dtype=np.float32)
    chosen = select_in_splits("kcenter", pixels, 200, rng=np.random.default_rng(3), device="cuda")
    assert chosen.size == 200 and np.array_equal(chosen, np.unique(chosen))
