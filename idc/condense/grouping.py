"""Grouping and pairing of local feature patches (paper 3.3 and appendix B).

- Patch descriptors: features of the configured layer, L2-normalised per position, averaged over
  each p x p local patch (for k-means and group assignment); the flattened normalised patch (for
  pairing distances).
- k-means (k-means++ seeding, Lloyd iterations) on the real descriptors -> M groups.
- Quotas: synthetic patches per group proportional to real patches per group (largest remainder).
- Progressive assignment: after the warm-up, one event every `assign_interval` steps; event j
  pairs the synthetic patches grouped at event j-1 and groups the next batch of ungrouped ones
  (`assign_times` grouping events, plus one final pairing event when the pair loss is used).
  All samples of one local patch share the patch's group and pair.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

logger = logging.getLogger(__name__)


def patch_descriptors(g: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, c, h, w) -> descriptors (N', c) (mean of normalised positions) and patches (N', c p p)."""
    n, c, h, w = g.shape
    if h % p or w % p:
        raise ValueError(f"condense config: patch={p} must divide the feature map size {h}x{w}")
    g = F.normalize(g, dim=1)
    x = g.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(-1, p * p, c)
    return x.mean(1), x.reshape(x.shape[0], -1)


def kmeans(x: torch.Tensor, k: int, *, generator: torch.Generator, iters: int = 100, tol: float = 1e-6
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means++ seeded Lloyd k-means: (centroids (k, D), labels (N,)). `generator` on x's device."""
    n = x.shape[0]
    if n < k:
        raise ValueError(f"condense config: groups={k} exceeds the number of real local patches ({n})")
    first = torch.randint(n, (1,), generator=generator, device=x.device)
    centres = [x[first[0]]]
    d2 = (x - centres[0]).square().sum(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # all points coincide with chosen centres: take any unchosen point
            idx = torch.randint(n, (1,), generator=generator, device=x.device)[0]
        else:
            idx = torch.multinomial(d2 / total, 1, generator=generator)[0]
        centres.append(x[idx])
        d2 = torch.minimum(d2, (x - x[idx]).square().sum(1))
    c = torch.stack(centres)
    labels = torch.cdist(x, c).argmin(1)
    for _ in range(iters):
        sums = torch.zeros_like(c).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)
        new_c = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], c)
        empty = (counts == 0).nonzero().flatten()
        if len(empty):  # re-seed an empty cluster at the point farthest from its centre
            dist = (x - new_c[labels]).square().sum(1)
            far = dist.argsort(descending=True)[: len(empty)]
            new_c[empty] = x[far]
        shift = (new_c - c).square().sum()
        c = new_c
        labels = torch.cdist(x, c).argmin(1)
        if shift <= tol:
            break
    return c, labels


def proportional_quotas(counts: np.ndarray | torch.Tensor, total: int) -> np.ndarray:
    """Integers q_m proportional to counts_m summing to `total` exactly (largest remainder;
    ties to the lower index), never above counts_m when total <= sum(counts)."""
    counts = np.asarray(counts, dtype=np.int64)
    s = int(counts.sum())
    if total < 0 or (s == 0 and total > 0):
        raise ValueError(f"cannot split {total} into quotas proportional to {counts.tolist()}")
    if total == 0:
        return np.zeros_like(counts)
    exact_num = counts * total  # exact quota = exact_num / s
    q = exact_num // s
    rem = exact_num - q * s
    short = total - int(q.sum())
    order = np.lexsort((np.arange(len(counts)), -rem))  # largest remainder first, then index
    q[order[:short]] += 1
    return q


def assign_under_capacity(dist: torch.Tensor, capacity: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose `count` rows of dist (U, M) and a group for each, nearest first, with at most
    capacity[m] rows per group. Returns (row indices, groups). Vectorised rounds: every open row
    proposes its nearest open group; each group accepts its closest proposals up to capacity; the
    globally closest accepted proposals are kept; full groups close. At most M + 1 rounds."""
    device = dist.device
    cap = capacity.clone()
    taken_rows: list[torch.Tensor] = []
    taken_groups: list[torch.Tensor] = []
    open_rows = torch.ones(dist.shape[0], dtype=torch.bool, device=device)
    need = count
    while need > 0:
        d = dist.masked_fill(cap[None, :] <= 0, float("inf")).masked_fill(~open_rows[:, None], float("inf"))
        best_d, best_g = d.min(1)
        cand = torch.isfinite(best_d).nonzero().flatten()
        if len(cand) == 0:
            raise RuntimeError("group assignment ran out of capacity (quotas smaller than patches)")
        # rank of each proposal inside its group by distance
        order = cand[torch.argsort(best_d[cand], stable=True)]
        g_sorted = best_g[order]
        order = order[torch.argsort(g_sorted, stable=True)]
        g_sorted = best_g[order]
        first_of_group = torch.searchsorted(g_sorted, g_sorted, right=False)
        rank = torch.arange(len(order), device=device) - first_of_group
        accepted = order[rank < cap[g_sorted]]
        accepted = accepted[torch.argsort(best_d[accepted], stable=True)][:need]
        groups = best_g[accepted]
        taken_rows.append(accepted)
        taken_groups.append(groups)
        open_rows[accepted] = False
        cap -= torch.bincount(groups, minlength=cap.numel()).to(cap.dtype)
        need -= len(accepted)
    return torch.cat(taken_rows), torch.cat(taken_groups)


def pair_one_to_one(cost: np.ndarray, method: str) -> np.ndarray:
    """For cost (S, R) with S <= R: column chosen for each row, all distinct.

    "hungarian": minimum total cost (scipy.optimize.linear_sum_assignment); "greedy": the
    globally closest free (row, column) first.
    """
    s, r = cost.shape
    if s > r:
        raise ValueError(f"cannot pair {s} synthetic patches one-to-one with {r} real patches")
    if method == "hungarian":
        rows, cols = linear_sum_assignment(cost)
        out = np.empty(s, dtype=np.int64)
        out[rows] = cols
        return out
    out = np.full(s, -1, dtype=np.int64)
    used = np.zeros(r, dtype=bool)
    for flat in np.argsort(cost, axis=None, kind="stable"):
        i, j = divmod(int(flat), r)
        if out[i] < 0 and not used[j]:
            out[i], used[j] = j, True
            if (out >= 0).all():
                break
    return out


@dataclass
class ProgressiveAssigner:
    """State of grouping and pairing for one instance (saved in checkpoints)."""

    groups: int
    assign_times: int
    use_pair: bool
    order: str
    pairing: str
    real_labels: torch.Tensor  # (N'_r,) group of each real local patch
    centroids: torch.Tensor  # (M, c)
    n_syn: int  # synthetic local patches
    quotas: torch.Tensor = field(init=False)
    syn_group: torch.Tensor = field(init=False)  # (n'_s,) group or -1
    syn_event: torch.Tensor = field(init=False)  # event at which the patch was grouped, or -1
    syn_pair: torch.Tensor = field(init=False)  # (n'_s,) paired real patch or -1
    real_taken: torch.Tensor = field(init=False)
    random_order: torch.Tensor | None = None  # seeded permutation for order="random"
    events_done: int = 0

    def __post_init__(self) -> None:
        dev = self.real_labels.device
        real_counts = torch.bincount(self.real_labels, minlength=self.groups).cpu().numpy()
        self.quotas = torch.as_tensor(proportional_quotas(real_counts, self.n_syn), device=dev)
        self.syn_group = torch.full((self.n_syn,), -1, dtype=torch.long, device=dev)
        self.syn_event = torch.full((self.n_syn,), -1, dtype=torch.long, device=dev)
        self.syn_pair = torch.full((self.n_syn,), -1, dtype=torch.long, device=dev)
        self.real_taken = torch.zeros(self.real_labels.shape[0], dtype=torch.bool, device=dev)

    def batch_size(self, event: int) -> int:
        """Synthetic patches grouped at grouping event `event` (cumulative counts floor((j+1) n / T))."""
        if event >= self.assign_times:
            return 0
        t = self.assign_times
        return (event + 1) * self.n_syn // t - event * self.n_syn // t

    def run_event(self, syn_desc: torch.Tensor, syn_patch: torch.Tensor, real_patch: torch.Tensor) -> dict[str, int]:
        """One assignment event with the current synthetic descriptors (n'_s, c) / patches (n'_s, c p p)."""
        j = self.events_done
        paired = 0
        if self.use_pair and j >= 1:
            paired = self._pair(self.syn_event == j - 1, syn_patch, real_patch)
        b = self.batch_size(j)
        if b:
            self._group(b, syn_desc, j)
        self.events_done += 1
        return {"event": j, "grouped": b, "paired": paired}

    def _group(self, b: int, syn_desc: torch.Tensor, event: int) -> None:
        free = (self.syn_group < 0).nonzero().flatten()
        used = torch.bincount(self.syn_group[self.syn_group >= 0], minlength=self.groups)
        cap = self.quotas - used
        if self.order == "random":
            # the next b free patches in the seeded permutation, each to its nearest open group
            rank = torch.argsort(self.random_order)  # position of each patch in the permutation
            candidates = free[torch.argsort(rank[free])][:b]
        else:
            candidates = free  # any free patch; the nearest to an open centroid go first
        rows, grp = assign_under_capacity(torch.cdist(syn_desc[candidates], self.centroids), cap, b)
        idx = candidates[rows]
        self.syn_group[idx] = grp
        self.syn_event[idx] = event

    def _pair(self, mask: torch.Tensor, syn_patch: torch.Tensor, real_patch: torch.Tensor) -> int:
        todo = mask.nonzero().flatten()
        for m in torch.unique(self.syn_group[todo]).tolist():  # only at events, not per step
            s_idx = todo[self.syn_group[todo] == m]
            r_idx = ((self.real_labels == m) & ~self.real_taken).nonzero().flatten()
            cost = torch.cdist(syn_patch[s_idx], real_patch[r_idx]).double().cpu().numpy()
            cols = torch.as_tensor(pair_one_to_one(cost, self.pairing), device=r_idx.device)
            self.syn_pair[s_idx] = r_idx[cols]
            self.real_taken[r_idx[cols]] = True
        return int(len(todo))

    def state_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in ("real_labels", "centroids", "quotas", "syn_group", "syn_event",
                                              "syn_pair", "real_taken", "random_order", "events_done")}

    def load_state_dict(self, state: dict[str, object]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
