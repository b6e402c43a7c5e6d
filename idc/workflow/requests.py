"""CPU and memory requests of the workflow's jobs, capped for small clusters and CI nodes
(`max_cpus`, `max_mem_mb`); GPU requests are :mod:`idc.resources`'."""

from __future__ import annotations

from typing import Any


def capped_mem(config: dict[str, Any], mb: int) -> int:
    """A job's memory request, capped by `max_mem_mb`."""
    cap = config["max_mem_mb"]
    return min(mb, cap) if cap else mb


def capped_cpus(config: dict[str, Any], n: int) -> int:
    """A job's CPU request, capped by `max_cpus`."""
    cap = config["max_cpus"]
    return min(n, cap) if cap else n


def job_resources(config: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """Cluster resources of one job from a config entry with `resources` (or the resources
    themselves): GPU stages ask for a GPU, CPU stages do not."""
    res = spec["resources"] if "resources" in spec else spec
    return {
        "gpu": res["gpu"],
        "cpus_per_task": capped_cpus(config, res["cpus"]),
        "mem_mb": capped_mem(config, res["mem_mb"]),
        "runtime": res["runtime"],
    }


def packed_resources(config: dict[str, Any], spec: dict[str, Any], pack: int) -> dict[str, Any]:
    """Resources of a job that condenses `pack` images in one loop: those of one image's job, with
    `pack` times its runtime (an upper bound: packing shares each step's extractor pass)."""
    res = job_resources(config, spec)
    return {**res, "runtime": res["runtime"] * pack}
