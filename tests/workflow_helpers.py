"""Running the workflow and the command line from tests: a private copy of the workflow files,
snakemake and `python -m idc` as subprocesses with the project importable, the job counts of a dry
run, and the check that a refused run says so in one line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "profiles", "envs")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def snakemake(args: list[str], cwd: Path, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        SNAKEMAKE + args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def run_idc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m idc ARGS` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "idc", *args], capture_output=True, text=True, env=_env(),
                          timeout=120, cwd=cwd)


def one_error_line(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """The run failed with exactly one `error:` line holding every needle, and no traceback."""
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-2000:]
    assert "Traceback" not in output, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(n in errors[0] for n in needles), output[-2000:]
    return errors[0]


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> count from the 'Job stats' table of a dry run."""
    counts: dict[str, int] = {}
    if "Job stats" not in output:
        return counts
    table = output.split("Job stats:", 1)[1]
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match:
            break
        if match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest / name)
    return dest


