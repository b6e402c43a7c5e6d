"""Progress lines of long stages: steady period, first and last line, rate and ETA."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from idc.progress import ProgressLog, format_duration


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_lines_come_at_the_period_with_rate_and_eta(caplog):
    clock = Clock()
    log = logging.getLogger("test.progress")
    progress = ProgressLog(log, "work", 100, unit="items", every_s=30, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        for _ in range(100):
            clock.t += 1.0  # one item per second
            progress.update()
    lines = [r.getMessage() for r in caplog.records]
    # first item, then every 30 s (items 31, 61, 91), then the last one
    assert len(lines) == 5
    assert lines[0] == "work: 1/100 items (1%), 1 items/s, elapsed 1s, eta 1m39s"
    assert lines[1].startswith("work: 31/100 items (31%), 1 items/s, elapsed 31s, eta 1m09s")
    assert lines[-1] == "work: 100/100 items (100%), 1 items/s, elapsed 1m40s, eta 0s"


def test_unknown_total_and_resumed_work(caplog):
    clock = Clock()
    progress = ProgressLog(logging.getLogger("t"), "download x", None, unit="MiB", clock=clock, start=50)
    clock.t += 10
    progress.update(20)  # 20 MiB in 10 s: the 50 resumed MiB do not count towards the rate
    assert progress.line() == "download x: 70 MiB, 2 MiB/s, elapsed 10s, eta ? (total unknown)"
    resumed = ProgressLog(logging.getLogger("t"), "d", 100, unit="MiB", clock=clock, start=50)
    clock.t += 5
    resumed.done += 10
    assert resumed.line().endswith("2 MiB/s, elapsed 5s, eta 20s")


def test_format_duration():
    assert format_duration(0) == "0s"
    assert format_duration(59.4) == "59s"
    assert format_duration(75) == "1m15s"
    assert format_duration(3725) == "1h02m"
    assert format_duration(-3) == "0s"


def test_crop_logs_progress_with_an_eta(tmp_path, caplog):
    from idc.data.crop import crop_images_to_store

    hr = tmp_path / "hr"
    hr.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(hr / f"{i}.png")
    with caplog.at_level(logging.INFO, logger="idc.data.crop"):
        crop_images_to_store(hr, tmp_path / "s.h5", scale=4, hr_size=16, step=16, workers=1)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("crop: ")]
    assert lines[0].startswith("crop: 4/12 patch pairs (33%)") and "eta" in lines[0]
    assert lines[-1].startswith("crop: 12/12 patch pairs (100%)") and lines[-1].endswith("eta 0s")
