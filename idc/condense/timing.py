"""Timing hooks of the condensation loop: wall time per step and per part of a step, taken inside
the loop the workflow runs (`condense_instances(..., timer=StepTimer(device))`), so a benchmark
times the product's step and not a copy of it.

A part ends with a device synchronisation, which costs the loop the overlap of host and device
work: the workflow never passes a timer, and the loop's default (`NO_TIMER`) does nothing at all.
`parts_from` leaves the first steps timed as whole steps only (one synchronisation per step), so
one run gives both the undisturbed step time and the breakdown.

Parts of a step, in order (what each holds):
    view              the synthetic patches of the step (parametrisation, augmentation)
    extractor_forward one extractor call over every instance's synthetic patches
    assignment        grouping and pairing events (only at event steps)
    frequencies       drawing this step's frequencies (or picking them from the pool)
    real_statistics   the real side's characteristic-function statistics at these frequencies
    samples           Random Local Fourier features and local samples of the synthetic side
    loss_ins_group    L_ins and L_group
    loss_pair         L_pair and the deformation regulariser
    backward          the backward pass through the losses and the extractor
    optimizer         the Adam step and the clamp to [0, 1]
    log               a logged step's records (diagnostics, gradient norms)
    checkpoint        writing a checkpoint
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch

PARTS = ("view", "extractor_forward", "assignment", "frequencies", "real_statistics", "samples", "loss_ins_group",
         "loss_pair", "backward", "optimizer", "log", "checkpoint")


class NoTimer:
    """The loop's default: every hook is free (no synchronisation, no clock)."""

    def step(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def part(self, name: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


NO_TIMER = NoTimer()


class StepTimer(NoTimer):
    """Milliseconds of every step, and of its parts from step `parts_from` on (0: every step).
    `after_step()` runs after each step (a profiler's `step`, say)."""

    def __init__(self, device: str | torch.device, *, parts_from: int = 0,
                 after_step: Callable[[], None] | None = None) -> None:
        self.device = torch.device(device)
        self.parts_from = parts_from
        self.after_step = after_step
        self.records: list[dict[str, float]] = []  # one per step: "step" and its timed parts
        self._current: dict[str, float] | None = None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        self._sync()
        t0 = time.perf_counter()
        self._current = {}
        try:
            yield
        finally:
            self._sync()
            self._current["step"] = (time.perf_counter() - t0) * 1000
            self.records.append(self._current)
            self._current = None
            if self.after_step is not None:
                self.after_step()

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        if name not in PARTS:
            raise ValueError(f"unknown part {name!r} of a condensation step (known: {', '.join(PARTS)})")
        current = self._current
        if current is None or len(self.records) < self.parts_from:
            yield
            return
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            current[name] = current.get(name, 0.0) + (time.perf_counter() - t0) * 1000

    def summary(self, first: int, last: int, *, how: str = "mean") -> dict[str, Any]:
        """Steps `first` to `last - 1` (0-based, this timer's own count): their step time (`how`:
        mean, or min: the least disturbed step on a shared CPU) and the mean of every part over
        them, in milliseconds, with `other`: the step's time outside the named parts."""
        steps = self.records[first:last]
        if not steps:
            raise ValueError(f"no timed steps in {first}..{last - 1} ({len(self.records)} recorded)")
        ms = [s["step"] for s in steps]
        out: dict[str, Any] = {"steps": len(steps),
                               "ms_per_step": round(min(ms) if how == "min" else sum(ms) / len(ms), 3)}
        parts = {p: round(sum(s.get(p, 0.0) for s in steps) / len(steps), 3) for p in PARTS
                 if any(p in s for s in steps)}
        if parts:
            mean_step = sum(ms) / len(ms)
            out["parts_ms"] = {**parts, "other": round(mean_step - sum(parts.values()), 3)}
        return out
