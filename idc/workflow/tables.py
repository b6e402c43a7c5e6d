"""The report's side of a run: the tables and what each reads, the figures' inputs, and the
workflow's default targets."""

from __future__ import annotations

from typing import Any

from idc.config import replicate_members, verdict_methods
from idc.runloop import derive_seed
from idc.workflow.datasets import CondensationRuns, condensation_datasets
from idc.workflow.paths import RunPaths
from idc.workflow.slices import canonical

# The table keys that only the verdict kind reads; a paper table's params leave them out, so
# adding them to the schema reran no table.
VERDICT_KEYS = ("kind", "compare_to", "whole", "contrasts", "bootstrap", "level")

FIGURE_INSTANCES = 3  # instances per IDC dataset drawn in the patch and progress figures


def verdict_tables(config: dict[str, Any]) -> list[str]:
    return [k for k, t in config["tables"].items() if t["kind"] == "verdict"]


def paper_tables(config: dict[str, Any]) -> list[str]:
    verdicts = verdict_tables(config)
    return [k for k in config["tables"] if k not in verdicts]


def table_pairs(config: dict[str, Any], table: str) -> list[tuple[str, str]]:
    """(row, model) of every cell group of a table."""
    spec = config["tables"][table]
    return [(d, m) for d in spec["datasets"] for m in spec["models"]]


def table_entries(config: dict[str, Any], table: str) -> list[tuple[str, str, int, str]]:
    """(row, dataset, replicate, model) of every trained model a table reads: a row stands for
    its replicates (`replicates` in the dataset's entry), whose results it averages or pairs."""
    datasets = config["datasets"]
    return [
        (row, member, datasets[member]["replicate"], model)
        for row, model in table_pairs(config, table)
        for member in replicate_members(datasets, row)
    ]


def table_metrics(config: dict[str, Any], paths: RunPaths, table: str) -> list[str]:
    """The metrics files of every trained model a table reads."""
    return [f"{paths.sr(d, m)}/metrics.csv" for _, d, _, m in table_entries(config, table)]


def paper_table_spec(config: dict[str, Any], table: str) -> dict[str, Any]:
    """A paper table's entry less the keys only verdicts read."""
    return canonical({k: v for k, v in config["tables"][table].items() if k not in VERDICT_KEYS})


def verdict_spec(config: dict[str, Any], table: str) -> dict[str, Any]:
    """What a verdict table computes: its rows, reference, contrasts, bootstrap and seed."""
    spec = config["tables"][table]
    reference, whole = verdict_methods(table, spec, config["datasets"])
    return canonical(
        {
            "title": spec["title"],
            "methods": spec["datasets"],
            "models": spec["models"],
            "testsets": spec["testsets"],
            "reference": reference,
            "whole": whole,
            "contrasts": spec["contrasts"],
            "labels": spec["method_labels"],
            "n_boot": spec["bootstrap"],
            "level": spec["level"],
            "seed": derive_seed(config["seed"], 5, table),
        }
    )


def table_outputs(paths: RunPaths, table: str, verdict: bool) -> list[str]:
    exts = ("csv", "md") if verdict else ("csv", "md", "tex", "html")
    return [f"{paths.results}/tables/{table}.{ext}" for ext in exts]


def figure_pairs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(row, model) of every target table, each once, sorted."""
    return sorted({p for t in config["targets"] for p in table_pairs(config, t)})


def figure_inputs(config: dict[str, Any], paths: RunPaths, condensations: CondensationRuns) -> dict[str, Any]:
    """What the figures draw: the training trajectories of the target tables' models and, for
    their IDC datasets, the condensed stores, the condensation logs and the progress snapshots."""
    pairs = figure_pairs(config)
    condensed = set(condensation_datasets(config["datasets"]))
    idc = sorted({d for d, _ in pairs if d in condensed})
    return {
        "trajectories": [f"{paths.sr(d, m)}/trajectory.csv" for d, m in pairs],
        "stores": [paths.dataset(d) for d in idc],
        "condense_logs": [
            paths.condensed(condensations.key(d), image, ".json") for d in idc for image in condensations.images(d)
        ],
        # progress grids: the first instances of each IDC dataset at several steps
        "snapshots": [
            paths.condensed(condensations.key(d), image, ".snapshots.npz")
            for d in idc
            for image in condensations.images(d)[:FIGURE_INSTANCES]
        ],
        "real_store": paths.store,
    }


def all_targets(config: dict[str, Any], paths: RunPaths) -> list[str]:
    """The default target: the target tables, the figures when on, the exported datasets."""
    verdicts = verdict_tables(config)
    targets = []
    for table in config["targets"]:
        targets += table_outputs(paths, table, table in verdicts)
    if config["figures"]:
        targets.append(f"{paths.results}/figures/done.txt")
    targets += [paths.export(d) for d in config["export"]["datasets"]]
    return targets
