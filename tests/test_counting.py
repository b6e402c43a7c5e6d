"""Counting conventions (idc/counting.py): floor(r N) as written, largest-remainder rounding."""

from __future__ import annotations

import numpy as np
import pytest

from idc.counting import hand_out_leftovers, largest_remainder, n_for_ratio

PAPER_N = 120_765  # DIV2K, HR 256 / step 128 crops (the paper's count)


def test_paper_count_ten_percent() -> None:
    assert n_for_ratio(PAPER_N, 0.1) == 12_076  # Table 1: 12,076 pairs
    assert n_for_ratio(PAPER_N, 0.01) == 1_207


def test_ratio_is_read_as_written() -> None:
    assert 0.29 * 100 < 29  # float noise that a plain floor(r * N) would turn into 28
    assert n_for_ratio(100, 0.29) == 29
    assert n_for_ratio(10, 0.7) == 7


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_ratio_outside_open_interval_fails(ratio: float) -> None:
    with pytest.raises(ValueError, match="ratio"):
        n_for_ratio(100, ratio)


def test_ratio_keeping_nothing_fails() -> None:
    with pytest.raises(ValueError, match="keeps no patch"):
        n_for_ratio(5, 0.1)


def test_largest_remainder_ties_go_to_earlier() -> None:
    assert largest_remainder(np.array([1, 1, 1]), 2).tolist() == [1, 1, 0]
    assert largest_remainder(np.array([5, 3, 2]), 10).tolist() == [5, 3, 2]
    assert largest_remainder(np.array([2, 2, 2, 2]), 5).tolist() == [2, 1, 1, 1]


def test_leftovers_are_exact_for_remainders_beyond_int64() -> None:
    big = 10**30  # a ratio written with many digits has a large common denominator
    assert hand_out_leftovers(np.array([0, 0, 0]), [big, big + 1, big], 1).tolist() == [0, 1, 0]
    assert hand_out_leftovers(np.array([2, 0]), [0, 0], 2).tolist() == [2, 0]
