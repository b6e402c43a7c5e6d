"""The study's Markdown document, built from the files of a run alone (`python -m idc
condense-study report`): the diagnostics table with the real-subset reference, the gradient table,
the downstream check, the figures, then the written reading named by the study file."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from idc.atomic import atomic_write_text
from idc.study.config import load_study
from idc.study.downstream import downstream_results
from idc.study.figures import plot_study_figures
from idc.study.summary import real_subset_reference, summarise_study


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def write_study_document(study_path: str | os.PathLike, doc_path: str | os.PathLike,
                         fig_dir: str | os.PathLike | None = None) -> Path:
    study = load_study(study_path)
    doc_path = Path(doc_path)
    fig_dir = Path(fig_dir) if fig_dir is not None else doc_path.parent / "figures"
    rows = summarise_study(study)
    if not rows:
        raise ValueError(f"no study runs under {study['out']}/runs: run the study first")
    figures = plot_study_figures(study, fig_dir)
    rel = [os.path.relpath(p, doc_path.parent) for p in figures]
    lines = [f"# {study.get('name', 'Condensation settings study')}", "",
             "Generated from a real run by", "",
             "```", f"python -m idc condense-study run --study {study_path}",
             f"python -m idc condense-study report --study {study_path} --doc {doc_path}", "```", "",
             TEXT_INTRO.format(images=study["images"], folder=study["folder"].split("/shared/")[-1]), "",
             "## Diagnostics after condensation (mean over the study images)", "",
             "| setting | overrides | MMD² ↓ | colour mean gap ↓ | colour std gap ↓ | diversity | "
             "nearest-real PSNR | coverage PSNR ↑ | MMD² at warm-up end | MMD plateau step | s/image |",
             "| :-- | :-- | --: | --: | --: | --: | --: | --: | --: | --: | --: |"]
    for row in rows:
        overrides = ", ".join(f"{k}={v}" for k, v in (study["settings"][row["setting"]] or {}).items()) or "(base)"
        if row["images"] < int(study["images"]):
            overrides += f" ({row['images']} of {study['images']} images)"
        lines.append(f"| {row['setting']} | {overrides} | {_fmt(row['mmd'], 4)} | {_fmt(row['colour_mean_gap'])} | "
                     f"{_fmt(row['colour_std_gap'])} | {_fmt(row['diversity'])} | {_fmt(row['nearest_psnr'], 2)} | "
                     f"{_fmt(row['coverage_psnr'], 2)} | {_fmt(row['mmd_warmup_end'], 4)} | "
                     f"{row['mmd_plateau_step']} / {row['steps']} | "
                     f"{_fmt(row['seconds'], 0)} |")
    ref = real_subset_reference(study)
    lines.append(f"| *{ref['n']} random real patches* | (selection, {ref['draws']} draws per image) | "
                 f"{_fmt(ref['mmd'], 4)} | {_fmt(ref['colour_mean_gap'])} | {_fmt(ref['colour_std_gap'])} | "
                 f"{_fmt(ref['diversity'])} | (copies) | {_fmt(ref['coverage_psnr'], 2)} (held-out) | | | |")
    first = rows[0]
    lines += ["", f"Starting points (step 0, mean): noise MMD² {_fmt(first['mmd_initial'], 4)}, coverage "
              f"{_fmt(first['coverage_psnr_initial'], 2)} dB; the real patches' own diversity is "
              f"{_fmt(first['real_diversity'])}.", ""]
    if any(r["grad_pair"] for r in rows):
        lines += ["## Which term drives the pixels", "",
                  "Median pixel-gradient norm of each weighted term over the logged steps after warm-up:", "",
                  "| setting | w_ins L_ins | w_group L_group | w_pair L_pair |", "| :-- | --: | --: | --: |"]
        lines += [f"| {r['setting']} | {_fmt(r['grad_ins'], 2)} | {_fmt(r['grad_group'], 2)} | "
                  f"{_fmt(r['grad_pair'], 2)} |" for r in rows]
        lines.append("")
    results = downstream_results(study)
    if results:
        ds = study["downstream"]
        lines += ["## Downstream check", "",
                  f"EDSR ({ds['model']['kwargs'].get('num_feat')}x{ds['model']['kwargs'].get('num_block')}, "
                  f"{ds['model']['train']['steps']} steps) trained on the synthetic pairs of the study images "
                  "(HR by the extractor teacher) or on as many random real pairs of the same images; the same "
                  f"seed per replicate. Test: {Path(study['testset']['hr']).parent.name}, Y-PSNR/SSIM.", "",
                  "| training set | replicate | PSNR (dB) | SSIM |", "| :-- | --: | --: | --: |"]
        for r in sorted(results, key=lambda r: (r["label"], r["replicate"])):
            lines.append(f"| {r['label']} | {r['replicate']} | {r['psnr']:.3f} | {r['ssim']:.4f} |")
        by_label: dict[str, list[float]] = {}
        for r in results:
            by_label.setdefault(r["label"], []).append(r["psnr"])
        lines += ["", "Mean over replicates: " + ", ".join(f"{k} {np.mean(v):.3f} dB" for k, v in
                                                            sorted(by_label.items())) + ".", ""]
    lines += ["## Figures", ""] + [f"![{Path(p).stem}]({p})" for p in rel] + [""]
    if study.get("reading") and Path(study["reading"]).is_file():
        lines += [Path(study["reading"]).read_text()]
    return atomic_write_text(doc_path, "\n".join(lines) + "\n")


TEXT_INTRO = """Every setting condenses the same {images} images (the first of `{folder}` in name order) from
the same seeds with one condensation setting changed from the base, the paper's settings at mini
sizes with its schedule scaled to the step count (warm-up 20%, 25 assignments over the next 50%,
lr x0.1 at 75/85/95%). The diagnostics (`idc/condense/diagnostics.py`) are not the training loss:
MMD² on descriptors of a fixed random conv network, the RGB mean/std gap, diversity (mean pairwise
RMS distance of the synthetic patches; the real patches' own value below the table), the PSNR of
each synthetic patch to its nearest real patch, and coverage (each real patch to its nearest
synthetic one). The MMD plateau step is the first logged step after which MMD² stays within 5% of
its total change; s/image is wall time with two study workers sharing two CPU cores with other work."""
