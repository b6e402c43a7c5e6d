"""bench/gpu_check.sh: its parts leave one JSON line per measured path even when stopped at their
limit, compiled paths cannot outlive their deadline, and the CPU smoke run goes to its end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.gpu_summary import part_state, summarise
from bench.partlog import PartLog, read_part, run_in_child

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["sr_train", "tests", "condense_step", "extractor", "profile", "condense_instance", "scan", "select", "condense_compiled"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def _wait_for(predicate, seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ----------------------------------------------------------------------------------------------
# Reading a part's lines back
# ----------------------------------------------------------------------------------------------
def test_a_cut_off_last_line_is_tolerated_and_its_path_reported_unfinished(tmp_path):
    lines = [{"plan": ["a", "b", "c", "d"], "device": "cpu"}, {"path": "a", "status": "started"},
             {"path": "a", "status": "ok", "ms": 1.0}, {"path": "b", "status": "skipped", "reason": "needs CUDA"},
             {"path": "c", "status": "started"}]
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"path": "c", "status": "ok", "ms": 2.'  # killed mid-write
    (tmp_path / "scan.jsonl").write_text(text)
    part = read_part(tmp_path / "scan.jsonl")
    assert part["truncated"] and part["plan"] == ["a", "b", "c", "d"] and part["info"] == {"device": "cpu"}
    assert part["finished"] == ["a", "b"] and part["in_progress"] == ["c"] and part["unfinished"] == ["c", "d"]
    state = part_state(part, {"rc": 137, "seconds": 35})
    assert state["timed_out"] and not state["complete"] and state["truncated_last_line"]
    assert state["finished"] == ["a"] and state["skipped"] == {"b": "needs CUDA"}
    assert state["unfinished"] == {"c": "stopped while running", "d": "not reached"}


def test_a_part_that_wrote_nothing_is_reported(tmp_path):
    summary = summarise(tmp_path, {"condense_step": {"rc": 124, "seconds": 60}})
    state = summary["parts"]["condense_step"]
    assert state["timed_out"] and not state["complete"] and state["unfinished"] == {"(part)": "wrote no lines"}


def test_a_failing_path_is_recorded_and_the_part_goes_on(tmp_path):
    log = PartLog(tmp_path / "p.jsonl", plan=["bad", "good"])
    try:
        with log.path("bad") as rec:
            rec["partial"] = 1
            raise ValueError("broken")
        with log.path("good") as rec:
            rec["figure"] = 2.0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    log.file.close()
    state = part_state(read_part(tmp_path / "p.jsonl"), {"rc": 1, "seconds": 1})
    assert state["failed"] == {"bad": "ValueError: broken"} and state["finished"] == ["good"]
    assert log.exit_code() == 1


# ----------------------------------------------------------------------------------------------
# A bench script stopped at its limit keeps its earlier lines
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["limit", "kill"])
def test_a_part_stopped_at_its_limit_keeps_its_lines_and_is_marked_unfinished(tmp_path, sig):
    """The scan benchmark is stopped while timing its slow sequential scan, as `timeout` stops a
    part: SIGTERM closes the path in progress as timeout, SIGKILL (after -k) leaves it started."""
    lines = tmp_path / "scan.jsonl"
    cmd = [sys.executable, str(ROOT / "bench" / "bench_scan.py"), "--scale", "cpu", "--device", "cpu",
           "--length", "8192", "--repeats", "10", "--jsonl", str(lines)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: lines.exists() and '"sequential", "status": "started"' in lines.read_text(), 120,
                  "the sequential scan to start")
        proc.send_signal(sig)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == (128 + signal.SIGTERM if sig == signal.SIGTERM else -signal.SIGKILL)
    summary = summarise(tmp_path, {"scan": {"rc": 124 if sig == signal.SIGTERM else 137, "seconds": 9}})
    state = summary["parts"]["scan"]
    assert state["timed_out"] and not state["complete"]
    assert state["finished"] == ["vectorised"] and "cuda_kernel" in state["skipped"]
    expected = "timeout: SIGTERM at the part's time limit" if sig == signal.SIGTERM else "stopped while running"
    assert state["unfinished"] == {"sequential": expected}
    assert summary["scan"]["vectorised"] > 0  # the figure measured before the stop survives


# ----------------------------------------------------------------------------------------------
# Compiled paths run in a child process under a deadline
# ----------------------------------------------------------------------------------------------
def _add(a: int, b: int) -> int:
    return a + b


def _broken() -> None:
    raise RuntimeError("compiler exploded")


def _hang(pid_file: str) -> None:
    """A child that ignores SIGTERM (as the condensation's stop handler defers it while compiling
    never reaches a step boundary) and has a process of its own (as torch inductor's compile
    workers)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    Path(pid_file).write_text(str(worker.pid))
    time.sleep(120)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # killed, not yet reaped by its new parent


def test_run_in_child_returns_results_and_errors():
    assert run_in_child(_add, {"a": 2, "b": 3}, 60) == ("ok", 5)
    assert run_in_child(_broken, {}, 60) == ("failed", "RuntimeError: compiler exploded")
    assert run_in_child(_add, {"a": 1, "b": 1}, 0)[0] == "timeout"


def test_run_in_child_kills_a_hanging_child_and_its_workers_at_the_deadline(tmp_path):
    pid_file = tmp_path / "worker.pid"
    t0 = time.monotonic()
    status, reason = run_in_child(_hang, {"pid_file": str(pid_file)}, 6)
    assert status == "timeout" and "deadline" in reason
    assert time.monotonic() - t0 < 30
    worker = int(pid_file.read_text())
    _wait_for(lambda: _gone(worker), 10, "the child's worker process to be killed")


# ----------------------------------------------------------------------------------------------
# The CPU smoke run of the whole check
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cpu_smoke_run_of_the_whole_check(tmp_path):
    out = tmp_path / "out"
    env = {**_env(), "OUT": str(out), "PY": sys.executable}
    env.pop("PARTS", None)
    result = subprocess.run(["bash", "bench/gpu_check.sh", "--device", "cpu"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["parts"]) == PARTS
    for name in PARTS:
        lines = out / f"{name}.jsonl"
        assert lines.is_file(), name
        part = read_part(lines)
        assert part["plan"] and part["finished"], name
        state = summary["parts"][name]
        assert state["rc"] == 0 and state["complete"], (name, state, (out / f"{name}.err").read_text()[-2000:])
        if name != "tests":  # the GPU-marked tests skip on a CPU: every other part measures something
            assert state["finished"], name
    # What needs CUDA is recorded as skipped, not failed.
    assert "TF32" in summary["parts"]["condense_step"]["skipped"]["fast_tf32"]
    assert "gpu_set" in summary["parts"]["condense_instance"]["skipped"]
    assert "sr_mambairv2_light_x4_mamba_ssm" in summary["parts"]["profile"]["skipped"]
    assert re.search(r"\d+ (skipped|passed)", summary["tests"]), summary["tests"]
    for path in ["condense_step", "condense_step_fused_attention", "sr_edsr_baseline_x4", "sr_swinir_light_x4",
                 "sr_mambairv2_light_x4"]:
        table = out / f"profile_{path}.txt"
        assert table.is_file() and "Self CPU" in table.read_text(), path
    assert summary["condense_compiled"]["fast"]["ms_per_step_settled"] > 0
    assert summary["condense_step"]["loss_relative_difference_fast_vs_plain"] < 1e-3
    # the attention paths of the extractor against float32 (TF32 is skipped on a CPU)
    assert "tf32@16" in summary["parts"]["extractor"]["skipped"]
    assert summary["extractor"]["float32@16"]["speedup"] == 1.0
    for path in ("fused@16", "fused_pad8@16"):
        assert summary["extractor"][path]["feature_rel_diff"] < 1e-5, path
