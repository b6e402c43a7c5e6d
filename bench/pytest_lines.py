"""A pytest plugin that writes the tests part of bench/gpu_check.sh in bench/partlog.py's format:
the collected tests as the plan, then one JSON line per test as it ends (ok, skipped with its
reason, failed with the last line of its error), flushed at once, so a run stopped at its time
limit still tells which tests passed.

    python -m pytest -p bench.pytest_lines --lines-out tests.jsonl -m gpu tests/...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# The file of this session: pytest_runtest_logreport gets no config to find it through.
_OUT: dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--lines-out", default=None, help="write one JSON line per test here as it ends")


def _write(record: dict[str, Any]) -> None:
    out = _OUT.get("file")
    if out is not None:
        out.write(json.dumps(record) + "\n")
        out.flush()


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--lines-out")
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _OUT["file"] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in pytest_unconfigure


def pytest_unconfigure(config: pytest.Config) -> None:
    out = _OUT.pop("file", None)
    if out is not None:
        out.close()


def pytest_collection_finish(session: pytest.Session) -> None:
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    _write({"plan": [item.nodeid for item in session.items], "torch": torch.__version__, "gpu": gpu})


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _write({"path": nodeid, "status": "started"})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    ended = report.when == "call" or (report.when == "setup" and not report.passed) or (
        report.when == "teardown" and report.failed)
    if not ended:
        return
    record: dict[str, Any] = {"path": report.nodeid, "seconds": round(report.duration, 3)}
    if report.passed:
        record["status"] = "ok"
    elif report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        record.update(status="skipped", reason=reason.removeprefix("Skipped: "))
    else:
        lines = [ln for ln in report.longreprtext.splitlines() if ln.strip()]
        record.update(status="failed", error=lines[-1] if lines else "failed", when=report.when)
    _write(record)
