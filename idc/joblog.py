"""Logging for one workflow job: everything the stage logs (and a failure's traceback) goes to the
job's log file as well as to stderr."""

from __future__ import annotations

import contextlib
import logging
import platform
import sys
from pathlib import Path
from typing import Iterator

import idc

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def job_logging(log_path: str | Path, level: int = logging.INFO) -> Iterator[logging.Logger]:
    """Send the root logger to `log_path` for the duration of the block; log the software
    versions first and any exception (with traceback) before it propagates."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    handlers = [logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)]
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    previous_level = root.level
    root.setLevel(level)
    logger = logging.getLogger("idc.job")
    logger.info("idc %s, python %s on %s", idc.__version__, platform.python_version(), platform.node())
    try:
        yield logger
    except BaseException:
        logger.exception("job failed")
        raise
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(previous_level)
