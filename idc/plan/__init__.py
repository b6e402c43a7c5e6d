"""Cost plan of a workflow configuration before anything is submitted: per rule the number of jobs,
GPUs per job, expected hours per job and GPU-hours, from the throughput table ``throughput.yaml``.

The jobs are counted from the configuration the way the workflow (:mod:`idc.workflow`) wires them: the
(dataset, model) pairs of the target tables, the datasets they train on, the condensation runs
and teachers those need. GPU training time per step is the table's figure scaled linearly in pixels
per GPU and step; data-parallel ranks are assumed to scale perfectly (gradient all-reduce not
counted), so multi-GPU figures are a lower bound. Rules without a figure are costed at their time
limit, marked ``limit``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TABLE_PATH = Path(__file__).with_name("throughput.yaml")
IMPORT_GPU_HOURS = 0.5  # import_teacher: convert + score a released checkpoint (its 30 min time limit)


# What the plan reads of a throughput table; checked on load so that another table (--throughput)
# with a missing or mistyped entry is one line naming the file and entry.
TABLE_ENTRIES = {
    "sr_training": {"arch": str, "match": dict, "kind": str, "name": str, "batch": (int, float),
                    "gt": (int, float), "steps_per_s": (int, float), "peak_gib": (int, float)},
    "condensation": {"kind": str, "ms_per_step": (int, float), "scale": str},
    "released_weights": {"file": str, "arch": str, "match": dict, "source": str},
}


def load_table(path: str | Path = TABLE_PATH) -> dict[str, Any]:
    """A throughput table (``throughput.yaml``'s layout), checked entry by entry."""
    try:
        with open(path) as fh:
            table = yaml.safe_load(fh)
    except yaml.YAMLError as err:
        raise ValueError(f"throughput table {path} is not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(table, dict):
        raise ValueError(f"throughput table {path} must hold a mapping (got {type(table).__name__})")
    for key, fields in TABLE_ENTRIES.items():
        entries = table.get(key, [] if key == "released_weights" else None)
        if entries is None:
            raise ValueError(f"throughput table {path}: entry {key} is missing")
        for i, entry in enumerate([entries] if key == "condensation" else entries if isinstance(entries, list)
                                  else [None]):
            where = key if key == "condensation" else f"{key}[{i}]"
            if not isinstance(entry, dict):
                raise ValueError(f"throughput table {path}: {where} must be a mapping")
            for field, kind in fields.items():
                if not isinstance(entry.get(field), kind) or isinstance(entry.get(field), bool):
                    raise ValueError(f"throughput table {path}: {where}.{field} is missing or not a "
                                     f"{getattr(kind, '__name__', 'number')}")
    _check_packing(path, table["condensation"].get("packing"))
    return table


def _check_packing(path: str | Path, packing: Any) -> None:
    """`condensation.packing` is optional; where given, instance-steps/s per pack size, 1 included."""
    if packing is None:
        return
    rates = packing.get("instance_steps_per_s") if isinstance(packing, dict) else None
    if not (isinstance(rates, dict) and 1 in rates and all(
            isinstance(k, int) and k >= 1 and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            for k, v in rates.items())):
        raise ValueError(f"throughput table {path}: condensation.packing.instance_steps_per_s must map pack "
                         f"sizes (1 included) to positive instance-steps per second")


@dataclass
class PlanRow:
    """One line of the plan: a rule, or one network of a training rule."""

    rule: str
    what: str
    jobs: int
    gpus: int
    hours: float  # expected wall hours per job
    batch_per_gpu: int | None = None
    mem_gib: float | None = None  # expected peak per GPU
    limit_h: float | None = None  # the job's time limit (resources.runtime)
    basis: str = ""

    @property
    def gpu_hours(self) -> float:
        return self.jobs * self.gpus * self.hours


def match_figure(spec: dict[str, Any], table: dict[str, Any]) -> dict[str, Any] | None:
    """The table entry for a network spec (``arch`` + ``kwargs``), or None."""
    kwargs = spec.get("kwargs", {})
    for entry in table["sr_training"]:
        if entry["arch"] == spec["arch"] and all(kwargs.get(k) == v for k, v in entry["match"].items()):
            return entry
    return None


def packing_gain(condensation: dict[str, Any], pack: int) -> float:
    """Instance-steps per second of `pack` images in one loop over those of one image, from the
    table's `condensation.packing` figures: the largest measured pack size not above `pack`
    (1.0 without figures, or when none is measured at that size)."""
    rates = {int(k): float(v) for k, v in condensation.get("packing", {}).get("instance_steps_per_s", {}).items()}
    if 1 not in rates:
        return 1.0
    return rates[max(k for k in rates if k <= pack)] / rates[1]


def released_weights(spec: dict[str, Any], table: dict[str, Any]) -> dict[str, Any] | None:
    """The released checkpoint (``released_weights`` of the table) for a teacher spec, or None."""
    kwargs = spec.get("kwargs", {})
    for entry in table.get("released_weights", []):
        if entry["arch"] == spec["arch"] and all(kwargs.get(k) == v for k, v in entry["match"].items()):
            return entry
    return None


def training_cost(spec: dict[str, Any], table: dict[str, Any]) -> dict[str, Any]:
    """Expected hours, peak memory per GPU and batch per GPU of one training job of ``spec``."""
    from idc.sr.distributed import job_ranks

    train, res = spec["train"], spec.get("resources", {})
    gpus = int(res.get("gpu", 1))
    ranks = job_ranks(res)
    share = train["batch_size"] / ranks
    entry = match_figure(spec, table)
    if gpus == 0:
        return {"gpus": 0, "share": share, "hours": float(res.get("runtime", 0)) / 60, "mem": None,
                "basis": "limit (CPU job: the figures are for GPUs)"}
    if entry is None:
        return {"gpus": gpus, "share": share, "hours": float(res.get("runtime", 0)) / 60, "mem": None,
                "basis": f"limit (no throughput figure for {spec['arch']})"}
    pixels = share * train["gt_size"] ** 2 / (entry["batch"] * entry["gt"] ** 2)
    steps_per_s = entry["steps_per_s"] / pixels
    return {"gpus": gpus, "share": share, "hours": train["steps"] / steps_per_s / 3600,
            "mem": entry["peak_gib"] * pixels, "basis": f"{entry['kind']}: {entry['name']}"}


def _training_images(config: dict[str, Any]) -> tuple[int, list[int] | None]:
    """Training images and, where the images are on disk (a folder), their patch counts from the
    headers (what the workflow's plan knows before cropping), else None."""
    trainset = config["data"]["trainset"]
    if trainset["source"] == "demo":
        from idc.data.demo import DEMO_TRAIN

        return len(DEMO_TRAIN), None
    if trainset["source"] == "div2k":
        total = 800
        return min(total, trainset.get("images") or total), None
    from idc.data.crop import image_patch_counts
    from idc.data.images import list_images

    files = list_images(trainset["folder"])
    files = files[: trainset.get("images") or len(files)]
    crop = config["data"]["crop"]
    counts = image_patch_counts(files, scale=config["scale"], hr_size=crop["hr_size"], step=crop["step"],
                                thresh=crop["thresh"])
    return len(files), list(counts)


def _condensed_images(config: dict[str, Any], spec: dict[str, Any], n_images: int,
                      counts: list[int] | None) -> tuple[int, int]:
    """(condensation jobs, steps) of one IDC dataset: its first `images` images, less those whose
    budget share is 0 when the patch counts are known (the workflow gives those no job)."""
    from idc.condense.config import CondenseConfig, resolve_condense_config

    resolved = resolve_condense_config(config["condense"]["params"], variant=spec["variant"], ratio=spec["ratio"])
    k = min(spec.get("images") or n_images, n_images)
    if counts is None:
        return k, resolved["steps"]
    shares = CondenseConfig.from_dict(resolved).synthetic_counts(counts)
    return sum(1 for share in shares[:k] if share > 0), resolved["steps"]


def plan(config: dict[str, Any], table: dict[str, Any] | None = None, *, tables: list[str] | None = None) -> list[PlanRow]:
    """Plan rows for a validated configuration; ``tables`` replaces ``config["targets"]``.

    GPUs per job are those the workflow's rules ask for (:mod:`idc.resources`); a CPU job costs
    no GPU-hours. A table row with replicates stands for each of them."""
    from idc.config import replicate_members
    from idc.resources import (
        condense_gpus,
        inference_gpus,
        selection_gpus,
        selection_uses_teacher,
        test_gpus,
        upsampler_gpus,
    )
    from idc.select.methods import CONDENSATION_METHODS, SELECTION_METHODS

    table = load_table() if table is None else table
    targets = config["targets"] if tables is None else tables
    for name in targets:
        if name not in config["tables"]:
            raise ValueError(f"unknown table {name!r}; the config has {sorted(config['tables'])}")
    datasets = config["datasets"]
    pairs = sorted({(member, m) for t in targets for d in config["tables"][t]["datasets"]
                    for member in replicate_members(datasets, d) for m in config["tables"][t]["models"]})
    used = sorted({d for d, _ in pairs})
    rows: list[PlanRow] = []

    # Teachers: the condensation extractor and the up-samplers of IDC and relabelled datasets,
    # the baselines' feature teacher; released weights (`weights`) are converted, not trained.
    idc = [d for d in used if datasets[d]["method"] in CONDENSATION_METHODS]
    relabelled = [d for d in used if d not in idc and datasets[d].get("hr_source") == "teacher"]
    teachers: set[str] = set()
    if idc:
        teachers.add(config["condense"]["extractor"])
    teachers.update(datasets[d]["upsampler"] for d in idc + relabelled)
    if any(selection_uses_teacher(config, d) for d in used):
        teachers.add(config["baselines"]["feature_teacher"])
    for name in sorted(teachers):
        spec = config["teachers"][name]
        if spec.get("weights"):
            # import_teacher: convert and score the checkpoint; a GPU only when the teacher has one
            rows.append(PlanRow("import_teacher", name, 1, inference_gpus(spec["resources"]), IMPORT_GPU_HOURS,
                                None, None, IMPORT_GPU_HOURS, "limit"))
            continue
        cost = training_cost(spec, table)
        rows.append(PlanRow("train_teacher", name, 1, cost["gpus"], cost["hours"], int(cost["share"]),
                            cost["mem"], spec["resources"]["runtime"] / 60, cost["basis"]))

    # Condensation: one job per image of each (variant, ratio, replicate) run.
    runs: dict[str, tuple[int, int]] = {}
    n_images, counts = _training_images(config) if idc else (0, None)
    for d in idc:
        spec = datasets[d]
        key = f"{spec['variant']}_r{spec['ratio']}_s{spec['replicate']}"
        jobs, steps = _condensed_images(config, spec, n_images, counts)
        runs[key] = (max(runs.get(key, (0, 0))[0], jobs), steps)
    if runs:
        cond = table["condensation"]
        gpus = condense_gpus(config)
        pack = config["condense"]["pack"]
        rule = "condense_image" if pack == 1 else "condense_pack"
        jobs = sum(math.ceil(n / pack) for n, _ in runs.values())
        steps = max(s for _, s in runs.values())
        limit = config["condense"]["resources"]["runtime"] * pack / 60
        if gpus:
            gain = packing_gain(cond, pack)
            basis = f"{cond['kind']}: {cond['ms_per_step']} ms/step ({cond['scale'].split(' (')[0]} scale)"
            if pack > 1:
                basis += f", {pack} images per job at {gain:.2f}x the instance-steps/s of one"
            rows.append(PlanRow(rule, f"{len(runs)} runs", jobs, gpus, pack * steps * cond["ms_per_step"] / 3.6e6 / gain,
                                None, None, limit, basis))
        else:
            rows.append(PlanRow(rule, f"{len(runs)} runs", jobs, 0, limit, None, None, limit,
                                "limit (CPU job: the figures are for GPUs)"))
    for rule, members in (("upsample_condensed", idc), ("relabel_dataset", relabelled)):
        by_gpus: dict[int, int] = {}
        for d in members:
            by_gpus[upsampler_gpus(config, d)] = by_gpus.get(upsampler_gpus(config, d), 0) + 1
        for gpus, count in sorted(by_gpus.items(), reverse=True):
            rows.append(PlanRow(rule, "" if gpus else "on the CPU", count, gpus, 2.0, None, None, 2.0, "limit"))

    # Selection runs on a GPU only when it computes teacher features (herding, k-center).
    by_gpus = {}
    for d in used:
        if datasets[d]["method"] in SELECTION_METHODS:
            by_gpus[selection_gpus(config, d)] = by_gpus.get(selection_gpus(config, d), 0) + 1
    for gpus, count in sorted(by_gpus.items(), reverse=True):
        rows.append(PlanRow("select_baseline", "teacher features" if gpus else "", count, gpus, 2.0,
                            None, None, 2.0, "limit"))

    by_model: dict[str, int] = {}
    for _, m in pairs:
        by_model[m] = by_model.get(m, 0) + 1
    for m, count in sorted(by_model.items()):
        spec = config["models"][m]
        cost = training_cost(spec, table)
        rows.append(PlanRow("train_sr", m, count, cost["gpus"], cost["hours"], int(cost["share"]), cost["mem"],
                            spec["resources"]["runtime"] / 60, cost["basis"]))
    for m, count in sorted(by_model.items()):
        rows.append(PlanRow("test_sr", m, count, test_gpus(config, m), 1.0, None, None, 1.0, "limit"))
    return rows


def weights_alternatives(config: dict[str, Any], rows: list[PlanRow],
                         table: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """For each trained teacher of the plan: its released checkpoint (or None), the GPU-hours
    importing it saves and the config key that imports it (``teachers.<name>.weights``)."""
    table = load_table() if table is None else table
    out = []
    for row in rows:
        if row.rule != "train_teacher":
            continue
        entry = released_weights(config["teachers"][row.what], table)
        out.append({"teacher": row.what, "gpu_hours": row.gpu_hours, "key": f"teachers.{row.what}.weights",
                    "file": entry["file"] if entry else None, "source": entry["source"] if entry else None})
    return out


def format_alternatives(rows: list[PlanRow], alternatives: list[dict[str, Any]]) -> str:
    """The released-weights alternative of each teacher, and the total with all of them used."""
    if not alternatives:
        return ""
    lines = [
        "Released weights instead of training the teachers: set the config key to the downloaded file; "
        "the job import_teacher converts and scores it (0 GPU-h of training, minutes on one GPU).",
        "",
        "| teacher | training GPU-h | with released weights | file | source | config key |",
        "| --- | ---: | ---: | --- | --- | --- |",
    ]
    saved = 0.0
    for alt in alternatives:
        if alt["file"]:
            saved += alt["gpu_hours"] - IMPORT_GPU_HOURS
            lines.append(f"| {alt['teacher']} | {alt['gpu_hours']:,.0f} | 0 (+{IMPORT_GPU_HOURS} import) | "
                         f"{alt['file']} | {alt['source']} | `{alt['key']}` |")
        else:
            lines.append(f"| {alt['teacher']} | {alt['gpu_hours']:,.0f} | (no released file for these kwargs) | | | |")
    total = sum(r.gpu_hours for r in rows)
    with_weights = total - saved
    lines += ["", f"total GPU-h: {total:,.0f} training every teacher ({total / 24:,.1f} GPU-days); "
                  f"{with_weights:,.0f} with the released weights ({with_weights / 24:,.1f} GPU-days)"]
    return "\n".join(lines)


def format_plan(rows: list[PlanRow], *, gpu_mem_gib: float = 80.0) -> str:
    """A Markdown table of the plan, totals, and warnings for jobs that do not fit."""
    lines = [
        "| rule | network / runs | jobs | GPUs/job | batch/GPU | GiB/GPU | h/job | limit h | GPU-h | basis |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    warnings = []
    for r in rows:
        mem = f"{r.mem_gib:.1f}" if r.mem_gib is not None else ""
        batch = str(r.batch_per_gpu) if r.batch_per_gpu is not None else ""
        limit = f"{r.limit_h:.3g}" if r.limit_h is not None else ""
        lines.append(f"| {r.rule} | {r.what} | {r.jobs} | {r.gpus} | {batch} | {mem} | {r.hours:.1f} | {limit} | "
                     f"{r.gpu_hours:,.0f} | {r.basis} |")
        if r.mem_gib is not None and r.mem_gib > gpu_mem_gib:
            warnings.append(f"{r.rule} {r.what}: {r.mem_gib:.0f} GiB per GPU does not fit {gpu_mem_gib:.0f} GiB; "
                            f"raise resources.gpu (batch per GPU {r.batch_per_gpu})")
        if r.limit_h is not None and r.hours > r.limit_h and not r.basis.startswith("limit"):
            attempts = math.ceil(r.hours / r.limit_h)
            warnings.append(f"{r.rule} {r.what}: {r.hours:.0f} h exceeds its {r.limit_h:.0f} h limit; "
                            f"it needs {attempts} attempts, each resuming from the checkpoint (profile retries)")
    total = sum(r.gpu_hours for r in rows)
    jobs = sum(r.jobs for r in rows)
    lines.append(f"| **total** | | {jobs} | | | | | | {total:,.0f} | {total / 24:,.1f} GPU-days |")
    return "\n".join(lines + [""] + [f"warning: {w}" for w in warnings])
