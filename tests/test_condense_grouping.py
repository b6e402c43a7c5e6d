"""k-means, quotas, capacity-constrained assignment, one-to-one pairing, progressive schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idc.condense.grouping import (
    ProgressiveAssigner,
    assign_under_capacity,
    kmeans,
    pair_one_to_one,
    patch_descriptors,
    proportional_quotas,
)


@pytest.mark.parametrize("counts,total", [([10, 20, 30, 40], 10), ([1, 1, 1], 2), ([5, 0, 7, 3], 7),
                                          ([33, 33, 34], 100), ([2417, 2390, 1, 7], 482)])
def test_quotas_sum_exactly_and_are_proportional(counts, total) -> None:
    q = proportional_quotas(counts, total)
    assert q.sum() == total
    exact = np.asarray(counts) * total / sum(counts)
    assert np.all(np.abs(q - exact) < 1)  # largest remainder: floor or ceil of the exact share
    assert np.all(q <= np.asarray(counts))
    assert np.all(q[np.asarray(counts) == 0] == 0)


def test_kmeans_finds_separated_clusters_deterministically() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centres])
    c1, l1 = kmeans(x, 3, generator=torch.Generator().manual_seed(5))
    c2, l2 = kmeans(x, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(l1, l2)
    for block in range(3):  # each true cluster is one k-means group
        assert len(torch.unique(l1[block * 50:(block + 1) * 50])) == 1
    assert len(torch.unique(l1)) == 3


def test_assignment_respects_capacity_and_prefers_nearest() -> None:
    dist = torch.tensor([[0.1, 5.0], [0.2, 5.0], [0.3, 0.4], [9.0, 0.5]])
    rows, groups = assign_under_capacity(dist, torch.tensor([1, 2]), 3)
    got = dict(zip(rows.tolist(), groups.tolist()))
    assert got == {0: 0, 2: 1, 3: 1}  # row 1 loses group 0 to row 0 and the count stops at 3
    assert torch.bincount(groups, minlength=2).tolist() == [1, 2]


@pytest.mark.parametrize("method", ["hungarian", "greedy"])
def test_pairing_is_one_to_one_and_nearest(method: str) -> None:
    rng = np.random.default_rng(0)
    cost = rng.random((6, 15))
    cols = pair_one_to_one(cost, method)
    assert len(set(cols.tolist())) == 6 and cols.min() >= 0 and cols.max() < 15
    # a synthetic patch that equals a real one is paired with it
    cost[2, 9] = -1.0
    assert pair_one_to_one(cost, method)[2] == 9
    with pytest.raises(ValueError):
        pair_one_to_one(rng.random((4, 3)), method)


def test_hungarian_total_is_optimal() -> None:
    cost = np.array([[1.0, 2.0], [1.0, 10.0]])
    assert pair_one_to_one(cost, "hungarian").tolist() == [1, 0]  # total 3 < greedy's 11
    assert pair_one_to_one(cost, "greedy").tolist() == [0, 1]


def test_patch_descriptors_average_normalised_positions() -> None:
    g = torch.randn(2, 3, 4, 4)
    desc, patches = patch_descriptors(g, 2)
    assert desc.shape == (8, 3) and patches.shape == (8, 12)
    n = torch.nn.functional.normalize(g, dim=1)
    assert torch.allclose(desc[0], n[0, :, :2, :2].mean(dim=(1, 2)))


def test_progressive_assigner_schedule_quotas_and_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    real_labels = torch.randint(0, 4, (200,), generator=g)
    centroids = torch.randn(4, 5, generator=g)
    a = ProgressiveAssigner(groups=4, assign_times=5, use_pair=True, order="nearest", pairing="hungarian",
                            real_labels=real_labels, centroids=centroids, n_syn=23)
    assert sum(a.batch_size(j) for j in range(5)) == 23
    syn_desc = torch.randn(23, 5, generator=g)
    syn_patch = torch.randn(23, 8, generator=g)
    real_patch = torch.randn(200, 8, generator=g)
    grouped_before = 0
    for j in range(6):  # 5 grouping events + the final pairing event
        info = a.run_event(syn_desc, syn_patch, real_patch)
        grouped = int((a.syn_group >= 0).sum())
        assert grouped - grouped_before == a.batch_size(j) == info["grouped"]
        grouped_before = grouped
        # pairing lags grouping by one event
        assert int((a.syn_pair >= 0).sum()) == (0 if j == 0 else int(((a.syn_event >= 0) & (a.syn_event <= j - 1)).sum()))
    assert torch.equal(torch.bincount(a.syn_group, minlength=4), a.quotas)
    assert torch.equal(a.quotas, torch.as_tensor(proportional_quotas(torch.bincount(real_labels, minlength=4), 23)))
    pairs = a.syn_pair
    assert len(torch.unique(pairs)) == 23  # one-to-one
    assert torch.equal(real_labels[pairs], a.syn_group)  # pairs stay inside their group
