"""Progress lines for job logs: count, rate and ETA at a steady period.

A terminal progress bar is useless in a Snakemake or SLURM log file (carriage returns, or nothing
at all when stderr is not a terminal), so long loops report through the logger instead:
``done/total (pct), rate/s, elapsed, eta`` at most once per ``every_s`` seconds, plus the first
and the last item, whatever the loop's speed.
"""

from __future__ import annotations

import logging
import time

__all__ = ["ProgressLog", "format_duration"]


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``3725`` -> ``1h02m``; short and fixed-order for grep-able logs."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class ProgressLog:
    """``p = ProgressLog(logger, "export", total=n, unit="pairs"); p.update(k)`` inside the loop.

    ``clock`` is injectable so tests can check the period and the ETA without sleeping.
    """

    def __init__(self, logger: logging.Logger, desc: str, total: int | None, *, unit: str = "items",
                 every_s: float = 30.0, clock=time.monotonic, start: int = 0) -> None:
        self.logger, self.desc, self.unit = logger, desc, unit
        self.total = None if total is None else int(total)  # None: unknown (no percentage, no ETA)
        self.every_s, self._clock = float(every_s), clock
        self.start = clock()
        self._last_log: float | None = None
        self.done = self._start_done = int(start)  # work already done before (a resumed download)

    def update(self, n: int = 1) -> None:
        self.done += int(n)
        now = self._clock()
        finished = self.total is not None and self.done >= self.total
        if self._last_log is None or finished or now - self._last_log >= self.every_s:
            self._last_log = now
            self.logger.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        rate = (self.done - self._start_done) / elapsed
        if self.total is None:
            return (f"{self.desc}: {self.done} {self.unit}, {rate:.3g} {self.unit}/s, "
                    f"elapsed {format_duration(elapsed)}, eta ? (total unknown)")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta = format_duration(left) if left != float("inf") else "?"
        return (f"{self.desc}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), "
                f"{rate:.3g} {self.unit}/s, elapsed {format_duration(elapsed)}, eta {eta}")
