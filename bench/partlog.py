"""What every part of bench/gpu_check.sh writes as it goes, and how it runs torch.compile under a
hard limit.

A part's JSON Lines file holds one object per line, flushed as soon as it is written, so a part
stopped at its time limit still leaves every figure it measured before:

    {"plan": ["fast", "fast_tf32", ...], "device": ..., "torch": ...}   the paths it means to measure
    {"path": "fast", "status": "started"}
    {"path": "fast", "status": "ok", "seconds": 12.3, ...figures}
    {"path": "fast_tf32", "status": "skipped", "reason": "TF32 is a CUDA feature"}

A path ends with status ok, skipped, failed (an exception, recorded and the next path measured)
or timeout (the part's limit or a child's deadline). `read_part` reads such a file back, a last
line cut short by a kill included.

torch.compile can spend minutes compiling and the condensation's stop handler waits for a step
boundary that compilation never reaches, so a compiled path runs in a child process
(`run_in_child`) that the parent kills at its own deadline.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

# Statuses that end a path.
ENDED = ("ok", "skipped", "failed", "timeout")


class PartStopped(BaseException):
    """The part received SIGTERM/SIGINT (its time limit): the current path is recorded as timeout
    and the part ends. A BaseException, so no `except Exception` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, frame: Any) -> None:
    raise PartStopped(signum)


def _jsonable(value: Any) -> Any:
    """Floats, ints, strings, lists and dicts as they are; tensors and numpy scalars as numbers."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


class PartLog:
    """Writes a part's JSON Lines file (`path` None: writes nothing, the script runs alone).

    `plan`: the paths the part means to measure, in order (what the summary lists as unfinished
    when the part is stopped). SIGTERM and SIGINT raise PartStopped from here on, so the path in
    progress is closed with status timeout before the process ends; a loop of the product that
    catches SIGTERM itself (condensation, SR training) ends with its own interruption, which
    `path` records the same way."""

    def __init__(self, path: Path | str | None, plan: list[str] | None = None, **info: Any) -> None:
        self.file: TextIO | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - open for the part's lifetime
        self.failed: list[str] = []
        self.records: dict[str, dict[str, Any]] = {}
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, _raise_stopped)
        if plan is not None:
            self.write({"plan": list(plan), **info})

    def write(self, record: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.write(json.dumps(record, default=_jsonable) + "\n")
            self.file.flush()

    def skip(self, name: str, reason: str) -> None:
        self.end(name, {"status": "skipped", "reason": reason})

    def end(self, name: str, record: dict[str, Any]) -> dict[str, Any]:
        record = {"path": name, **record}
        self.records[name] = record
        if record.get("status") in ("failed", "timeout"):
            self.failed.append(name)
        self.write(record)
        return record

    @contextlib.contextmanager
    def path(self, name: str) -> Iterator[dict[str, Any]]:
        """Measure one path: the body fills the yielded dict with its figures (or sets "status"
        and "reason" itself, e.g. to "skipped"). An exception is recorded as failed and the part goes on
        with its next path; a stop signal is recorded as timeout and ends the part."""
        self.write({"path": name, "status": "started"})
        rec: dict[str, Any] = {}
        t0 = time.perf_counter()
        try:
            yield rec
        except PartStopped as stop:
            self.end(name, {"status": "timeout", "reason": f"{stop} at the part's time limit",
                            "seconds": round(time.perf_counter() - t0, 2), **rec})
            raise SystemExit(128 + stop.signum) from None
        except Exception as err:  # noqa: BLE001 - one path failing must not lose the others
            if _is_run_interrupted(err):  # the product's loop caught the stop signal itself
                self.end(name, {"status": "timeout", "reason": f"{err}", "seconds": round(time.perf_counter() - t0, 2),
                                **rec})
                raise SystemExit(128 + int(getattr(err, "signum", signal.SIGTERM))) from None
            self.end(name, {"status": "failed", "error": f"{type(err).__name__}: {err}",
                            "seconds": round(time.perf_counter() - t0, 2), **rec})
            print(f"path {name} failed: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            return
        rec.setdefault("status", "ok")
        rec.setdefault("seconds", round(time.perf_counter() - t0, 2))
        self.end(name, rec)

    def exit_code(self) -> int:
        """0 when every path ended ok or skipped, else 1."""
        return 1 if self.failed else 0


def _is_run_interrupted(err: BaseException) -> bool:
    try:
        from idc.runloop import RunInterrupted
    except ImportError:  # pragma: no cover - the bench scripts run from the repository
        return False
    return isinstance(err, RunInterrupted)


# ----------------------------------------------------------------------------------------------
# Reading a part back
# ----------------------------------------------------------------------------------------------
def read_part(path: Path) -> dict[str, Any]:
    """A part's lines: {"plan", "info", "records" (path -> its last end line), "finished",
    "unfinished" (planned or started without an end line, in plan order), "in_progress" (started,
    not ended: where the part was stopped), "truncated" (the last line was cut short), "bad_lines"}.
    A missing file reads as a part that wrote nothing."""
    out: dict[str, Any] = {"exists": path.exists(), "plan": [], "info": {}, "records": {}, "finished": [],
                           "unfinished": [], "in_progress": [], "truncated": False, "bad_lines": 0}
    if not path.exists():
        return out
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    started: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                out["truncated"] = True  # killed while writing its last line
            else:
                out["bad_lines"] += 1
            continue
        if not isinstance(rec, dict):
            out["bad_lines"] += 1
        elif "plan" in rec:
            out["plan"] = list(rec["plan"])
            out["info"].update({k: v for k, v in rec.items() if k != "plan"})
        elif "info" in rec:  # what a part learns after its plan line (sizes, versions)
            out["info"].update(rec["info"])
        elif "path" in rec:
            name = rec["path"]
            if rec.get("status") in ENDED:
                out["records"][name] = rec
            elif name not in started:
                started.append(name)
    ended = out["records"]
    out["finished"] = list(ended)
    order = out["plan"] + [n for n in started if n not in out["plan"]]
    out["unfinished"] = [n for n in order if n not in ended]
    out["in_progress"] = [n for n in started if n not in ended]
    return out


# ----------------------------------------------------------------------------------------------
# A child process under a deadline
# ----------------------------------------------------------------------------------------------
def _child_main(conn: Any, fn: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    # Its own process group: the parent kills the child together with the compile workers it
    # starts (torch inductor's pool), which a kill of the child alone would leave running.
    os.setsid()
    # The parent decides when the child stops; the condensation's own stop handler is not reached
    # while compiling anyway.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = ("ok", fn(**kwargs))
    except BaseException as err:  # noqa: BLE001 - reported to the parent as the path's failure
        result = ("failed", f"{type(err).__name__}: {err}")
    conn.send(result)
    conn.close()


def _kill_group(process: Any) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        if process.exitcode is None:
            process.kill()  # stopped before it made its own group
    process.join(10)


def run_in_child(fn: Callable[..., Any], kwargs: dict[str, Any], seconds: float) -> tuple[str, Any]:
    """`fn(**kwargs)` in a spawned child process; ("ok", its return value), ("failed", the error)
    or ("timeout", a sentence) when it ran past `seconds`, then it and its process group are
    killed (SIGKILL: a compiling child never reaches the step boundary a SIGTERM waits for).
    `fn` must be a module-level function; its return value crosses a pipe by pickling (return
    numpy arrays, not tensors: a tensor would travel through shared memory that dies with the
    child). A stop signal to the parent kills the child too (PartStopped propagates)."""
    if seconds <= 0:
        return "timeout", "no time left before the part's deadline"
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    # Not a daemon: a daemonic process may not start processes of its own (the compile workers).
    process = ctx.Process(target=_child_main, args=(send, fn, kwargs))
    process.start()
    send.close()  # the child's end: its exit then reads as end-of-file here
    try:
        if receive.poll(seconds):
            try:
                status, value = receive.recv()
            except EOFError:
                process.join(10)
                return "failed", f"child process ended without a result (exit code {process.exitcode})"
            process.join(30)
            _kill_group(process)  # whatever of its group is left (compile workers)
            return status, value
        _kill_group(process)
        return "timeout", f"killed at its deadline of {seconds:.0f} s"
    except BaseException:
        _kill_group(process)
        raise
    finally:
        receive.close()
