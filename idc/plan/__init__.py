"""Cost plan of a workflow configuration before anything is submitted: per rule the number of jobs,
GPUs per job, expected hours per job and GPU-hours, from the throughput table ``throughput.yaml``.

The jobs are counted from the configuration the way ``workflow/rules/common.smk`` wires them: the
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
SELECTION_METHODS = ("random", "herding", "kcenter", "dcsr")
IMPORT_GPU_HOURS = 0.5  # import_teacher: convert + score a released checkpoint (its 30 min time limit)


def load_table(path: str | Path = TABLE_PATH) -> dict[str, Any]:
    with open(path) as fh:
        return yaml.safe_load(fh)


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


def _image_count(config: dict[str, Any]) -> int:
    trainset = config["data"]["trainset"]
    if trainset["source"] == "demo":
        from idc.data.demo import DEMO_TRAIN

        return len(DEMO_TRAIN)
    if trainset["source"] == "div2k":
        total = 800
    else:
        from idc.data.images import list_images

        total = len(list_images(trainset["folder"]))
    return min(total, trainset.get("images") or total)


def plan(config: dict[str, Any], table: dict[str, Any] | None = None, *, tables: list[str] | None = None) -> list[PlanRow]:
    """Plan rows for a validated configuration; ``tables`` replaces ``config["targets"]``."""
    from idc.condense.config import resolve_condense_config

    table = load_table() if table is None else table
    targets = config["targets"] if tables is None else tables
    for name in targets:
        if name not in config["tables"]:
            raise ValueError(f"unknown table {name!r}; the config has {sorted(config['tables'])}")
    pairs = sorted({(d, m) for t in targets for d in config["tables"][t]["datasets"]
                    for m in config["tables"][t]["models"]})
    datasets = config["datasets"]
    used = sorted({d for d, _ in pairs})
    rows: list[PlanRow] = []

    # Teachers: the condensation extractor and the up-samplers of IDC datasets, the baselines'
    # feature teacher; released weights (`weights`) are converted, not trained.
    idc = [d for d in used if datasets[d]["method"] == "idc"]
    teachers: set[str] = set()
    if idc:
        teachers.add(config["condense"]["extractor"])
        teachers.update(datasets[d]["upsampler"] for d in idc)
    for d in used:
        spec = datasets[d]
        if spec["method"] in ("herding", "kcenter"):
            merged = {**config["baselines"], **spec.get("selection", {})}
            if merged["feature_source"] == "teacher":
                teachers.add(merged["feature_teacher"])
    for name in sorted(teachers):
        spec = config["teachers"][name]
        if spec.get("weights"):
            # import_teacher: convert and score the checkpoint; a GPU only when the teacher has one
            gpus = min(1, int(spec.get("resources", {}).get("gpu", 1)))
            rows.append(PlanRow("import_teacher", name, 1, gpus, IMPORT_GPU_HOURS, None, None, IMPORT_GPU_HOURS,
                                "limit"))
            continue
        cost = training_cost(spec, table)
        rows.append(PlanRow("train_teacher", name, 1, cost["gpus"], cost["hours"], int(cost["share"]),
                            cost["mem"], spec["resources"]["runtime"] / 60, cost["basis"]))

    # Condensation: one job per image of each (variant, ratio, replicate) run.
    runs: dict[str, tuple[int, int]] = {}
    n_images = _image_count(config) if idc else 0
    for d in idc:
        spec = datasets[d]
        key = f"{spec['variant']}_r{spec['ratio']}_s{spec.get('replicate', 0)}"
        steps = resolve_condense_config(config["condense"]["params"], variant=spec["variant"], ratio=spec["ratio"])["steps"]
        images = spec.get("images") or n_images
        runs[key] = (max(runs.get(key, (0, 0))[0], min(images, n_images)), steps)
    if runs:
        cond = table["condensation"]
        jobs = sum(n for n, _ in runs.values())
        steps = max(s for _, s in runs.values())
        rows.append(PlanRow("condense_image", f"{len(runs)} runs", jobs, 1, steps * cond["ms_per_step"] / 3.6e6,
                            None, None, config["condense"]["resources"]["runtime"] / 60,
                            f"{cond['kind']}: {cond['ms_per_step']} ms/step ({cond['scale'].split(' (')[0]} scale)"))
        rows.append(PlanRow("upsample_condensed", "", len(idc), 1, 2.0, None, None, 2.0, "limit"))

    # Selection runs on a GPU only when it computes teacher features (herding, k-center).
    on_gpu = {True: 0, False: 0}
    for d in used:
        spec = datasets[d]
        if spec["method"] in SELECTION_METHODS:
            merged = {**config["baselines"], **spec.get("selection", {})}
            on_gpu[spec["method"] in ("herding", "kcenter") and merged["feature_source"] == "teacher"] += 1
    for gpu, count in ((True, on_gpu[True]), (False, on_gpu[False])):
        if count:
            rows.append(PlanRow("select_baseline", "teacher features" if gpu else "", count, int(gpu), 2.0,
                                None, None, 2.0, "limit"))

    by_model: dict[str, int] = {}
    for _, m in pairs:
        by_model[m] = by_model.get(m, 0) + 1
    for m, count in sorted(by_model.items()):
        spec = config["models"][m]
        cost = training_cost(spec, table)
        rows.append(PlanRow("train_sr", m, count, cost["gpus"], cost["hours"], int(cost["share"]), cost["mem"],
                            spec["resources"]["runtime"] / 60, cost["basis"]))
    if pairs:
        rows.append(PlanRow("test_sr", "", len(pairs), 1, 1.0, None, None, 1.0, "limit"))
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
