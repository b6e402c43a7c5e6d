"""The condensation settings study: which settings make IDC's synthetic patches faithful and diverse.

A study is described by one YAML file (`config/condensation-study.yaml`): a folder of training
photos, the first `images` of them (sorted names) as the study's instances, the crop, a small
extractor teacher trained on *all* photos of the folder, the shared base settings and a list of
named settings, each a set of `CondenseConfig` overrides of the base. For every (setting, image)
the condensation runs with the quality diagnostics of `idc.condense.diagnostics` logged along the
way; for the settings named under `downstream`, an EDSR is trained on the synthetic set of the
study images (HR by the teacher) and on the same number of random real pairs of the same images,
with paired seeds, and tested on a benchmark set.

Every result is a file under the study's output folder, written atomically and skipped when it
exists, so an interrupted study resumes; `write_study_document` builds the Markdown document and
its figures from those files alone.

    python -m idc condense-study run --study config/condensation-study.yaml
    python -m idc condense-study report --study config/condensation-study.yaml --doc docs/condensation-study.md
"""

from __future__ import annotations

import json
import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from idc.atomic import atomic_open, atomic_write_text
from idc.names import check_name

logger = logging.getLogger(__name__)

STUDY_KEYS = {"name", "out", "seed", "scale", "folder", "images", "crop", "teacher", "base", "settings",
              "downstream", "testset", "workers", "reading"}


def paper_schedule(steps: int) -> dict[str, Any]:
    """The paper's schedule (20k steps: 4k warm-up, 25 assignments every 400 steps, lr x0.1 at
    15k/17k/19k) scaled to `steps`, keeping every event and milestone at the same fraction."""
    f = steps / 20000.0
    interval = max(1, round(400 * f))
    return {"steps": steps, "warmup": round(4000 * f), "assign_interval": interval, "assign_times": 25,
            "milestones": [round(m * f) for m in (15000, 17000, 19000)]}


def load_study(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study file not found: {path}")
    study = yaml.safe_load(path.read_text()) or {}
    unknown = sorted(set(study) - STUDY_KEYS)
    if unknown:
        raise ValueError(f"study {path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(STUDY_KEYS))})")
    for key in ("out", "folder", "images", "crop", "teacher", "base", "settings"):
        if key not in study:
            raise ValueError(f"study {path}: missing key {key!r}")
    base = path.parent
    for key in ("out", "folder"):
        study[key] = str((base / study[key]).resolve()) if not os.path.isabs(study[key]) else study[key]
    if "reading" in study:  # the written reading of the results, appended to the document
        study["reading"] = str((base / study["reading"]).resolve())
    if "testset" in study:
        study["testset"] = {k: str((base / v).resolve()) for k, v in study["testset"].items()}
    # every setting must be a valid condensation config and a folder name before any work starts
    for name in study["settings"]:
        check_name(name, f"study {path}: setting")
        setting_config(study, name)
    for name in study.get("downstream", {}).get("settings", []):
        if name not in study["settings"]:
            raise ValueError(f"study {path}: downstream setting {name!r} is not under settings")
    return study


def setting_config(study: dict[str, Any], name: str) -> dict[str, Any]:
    """Base settings (with the paper schedule scaled to the base's steps), then the setting's."""
    from idc.condense.config import CondenseConfig

    if name not in study["settings"]:
        raise ValueError(f"study: unknown setting {name!r}")
    base = dict(study["base"])
    overrides = dict(study["settings"][name] or {})
    steps = int(overrides.get("steps", base.get("steps", 20000)))
    values = {**base, **paper_schedule(steps), **overrides}
    values["ratio"] = float(base.get("ratio", 0.1))
    return CondenseConfig.from_dict(values).to_dict()


# ---------------------------------------------------------------- preparation


def _prepare(study: dict[str, Any]) -> dict[str, Path]:
    """Patch store of every photo in the folder, and the extractor teacher trained on it."""
    from idc.data.crop import crop_images_to_store
    from idc.sr.config import TrainConfig
    from idc.sr.train import train_sr

    out = Path(study["out"])
    store = out / "data" / "train_patches.h5"
    if not store.is_file():
        crop = study["crop"]
        crop_images_to_store(study["folder"], store, scale=int(study.get("scale", 4)), hr_size=crop["hr_size"],
                             step=crop["step"], seed=int(study.get("seed", 0)), workers=1, source=study["folder"])
    teacher_dir = out / "teacher"
    if not (teacher_dir / "model.safetensors").is_file():
        t = study["teacher"]
        val = study.get("testset", {})
        train_sr(TrainConfig.for_network(t, seed=int(study.get("seed", 0))), store_path=store, out_dir=teacher_dir,
                 device="cpu", val_hr_dir=val.get("hr"), val_lr_dir=val.get("lr"))
    return {"store": store, "teacher": teacher_dir / "model.safetensors"}


def study_image_ids(store_path: Path, count: int) -> list[int]:
    from idc.data.store import PatchStore

    ids = np.unique(PatchStore(store_path).image_ids)
    if count > len(ids):
        raise ValueError(f"study asks for {count} images but the store holds {len(ids)}")
    return [int(i) for i in ids[:count]]


def _condense_one(job: tuple[dict[str, Any], str, int, str, str]) -> str:
    """One (setting, image) condensation through the stage the workflow uses (same files, same
    instance seed); a worker process's unit of work. Skipped when its log exists."""
    import torch

    from idc.condense.stage import condense_image

    study, name, image_id, store_path, teacher_path = job
    folder = Path(study["out"]) / "runs" / name
    log_path = folder / f"{image_id:04d}.json"
    if not log_path.is_file():
        torch.set_num_threads(1)
        condense_image(store_path=store_path, image_id=image_id, extractor_path=teacher_path,
                       out_path=folder / f"{image_id:04d}.npy", log_path=log_path,
                       cfg=setting_config(study, name), seed=int(study.get("seed", 0)), device="cpu")
        logger.info("study: %s image %d done", name, image_id)
    return str(log_path)


def run_condensations(study: dict[str, Any], paths: dict[str, Path]) -> list[str]:
    image_ids = study_image_ids(paths["store"], int(study["images"]))
    jobs = [(study, name, i, str(paths["store"]), str(paths["teacher"])) for name in study["settings"]
            for i in image_ids]
    workers = int(study.get("workers", 1))
    done = []
    if workers <= 1:
        for job in jobs:
            done.append(_condense_one(job))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for k, path in enumerate(pool.map(_condense_one, jobs), 1):
                done.append(path)
                logger.info("study: %d/%d condensations complete", k, len(jobs))
    return done


# ---------------------------------------------------------------- downstream check


def _downstream_store(study: dict[str, Any], name: str, paths: dict[str, Path], image_ids: list[int]) -> Path:
    """Synthetic LR of the study images, HR by the teacher, as one patch store (the workflow's
    up-sampling stage)."""
    from idc.condense.stage import upsample_and_assemble

    out = Path(study["out"]) / "downstream" / f"idc-{name}.h5"
    if not out.is_file():
        runs = Path(study["out"]) / "runs" / name
        upsample_and_assemble(synthetic_paths=[runs / f"{i:04d}.npy" for i in image_ids], image_ids=image_ids,
                              upsampler_path=paths["teacher"], out_store=out, source=f"study {name}",
                              seed=int(study.get("seed", 0)), device="cpu", batch_size=32, real_store=paths["store"])
    return out


def _random_indices(study: dict[str, Any], paths: dict[str, Path], image_ids: list[int], n: int,
                    replicate: int) -> Path:
    from idc.data.store import PatchStore

    out = Path(study["out"]) / "downstream" / f"random-n{n}-r{replicate}.idx.npy"
    if out.is_file():
        return out
    store = PatchStore(paths["store"])
    pool = np.concatenate([store.indices_of_image(i) for i in image_ids])
    rng = np.random.default_rng([int(study.get("seed", 0)), 7, replicate])
    picks = np.sort(rng.choice(pool, size=n, replace=False)).astype(np.int64)
    with atomic_open(out) as handle:
        np.save(handle, picks)
    return out


def _pair_count(store: Path, indices: Path | None) -> int:
    from idc.data.store import PatchStore

    return int(len(np.load(indices))) if indices is not None else len(PatchStore(store))


def _train_and_test(study: dict[str, Any], label: str, store: Path, indices: Path | None, replicate: int) -> dict:
    import torch

    from idc.condense.stage import write_json
    from idc.sr.config import TrainConfig
    from idc.sr.test import evaluate_images, load_test_images, pair_test_images
    from idc.sr.train import train_sr

    ds = study["downstream"]
    out_dir = Path(study["out"]) / "downstream" / "sr" / f"{label}-r{replicate}"
    result_path = out_dir / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    torch.set_num_threads(max(1, int(study.get("workers", 1))))
    model = ds["model"]
    train_sr(TrainConfig.for_network(model, seed=1000 + replicate), store_path=store, out_dir=out_dir,
             indices_path=indices, device="cpu")
    from idc.archs import load_model

    net = load_model(out_dir / "model.safetensors").eval()
    scale = int(study.get("scale", 4))
    images = load_test_images(pair_test_images(study["testset"]["hr"], study["testset"]["lr"], scale), scale)
    rows = evaluate_images(net, images, crop_border=ds.get("crop_border", 2), test_y_channel=True,
                           device=torch.device("cpu"))
    result = {"label": label, "replicate": replicate, "psnr": float(np.mean([r["psnr"] for r in rows])),
              "ssim": float(np.mean([r["ssim"] for r in rows])), "pairs": _pair_count(store, indices)}
    write_json(result_path, result)
    return result


def run_downstream(study: dict[str, Any], paths: dict[str, Path]) -> list[dict]:
    from idc.data.store import PatchStore

    ds = study.get("downstream")
    if not ds:
        return []
    image_ids = study_image_ids(paths["store"], int(study["images"]))
    results = []
    for replicate in range(int(ds.get("replicates", 2))):
        for name in ds["settings"]:
            store = _downstream_store(study, name, paths, image_ids)
            results.append(_train_and_test(study, f"idc-{name}", store, None, replicate))
        n = len(PatchStore(_downstream_store(study, ds["settings"][0], paths, image_ids)))  # pairs, not images
        idx = _random_indices(study, paths, image_ids, n, replicate)
        results.append(_train_and_test(study, "random", paths["store"], idx, replicate))
    return results


def run_study(study_path: str | os.PathLike) -> None:
    study = load_study(study_path)
    paths = _prepare(study)
    run_condensations(study, paths)
    run_downstream(study, paths)


# ---------------------------------------------------------------- summary and document


def _runs(study: dict[str, Any]) -> dict[str, list[dict]]:
    """setting -> its per-image logs, in the study file's order (empty when not run)."""
    from idc.condense.diagnostics import read_condensation_logs

    logs = read_condensation_logs(Path(study["out"]) / "runs")
    return {name: logs.get(name, []) for name in study["settings"]}


def summarise_study(study: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per setting: final diagnostics (mean over the study images), plateau steps."""
    from idc.condense.diagnostics import DIAGNOSTIC_KEYS, diagnostic_at_step, diagnostic_curve, settling_step

    rows = []
    for name, logs in _runs(study).items():
        if not logs:
            continue
        row: dict[str, Any] = {"setting": name, "images": len(logs),
                               "seconds": float(np.mean([log["seconds"] for log in logs]))}
        for key in DIAGNOSTIC_KEYS:
            row[key] = float(np.mean([log["diagnostics"]["final"][key] for log in logs]))
            row[key + "_initial"] = float(np.mean([log["diagnostics"]["initial"][key] for log in logs]))
        plateaus = [settling_step(*diagnostic_curve(log)) for log in logs]
        row["mmd_plateau_step"] = int(np.median([p for p in plateaus if p is not None]))
        # the distribution match reached by L_ins alone, before grouping and pairing take over
        warm = [diagnostic_at_step(log, log["config"]["warmup"]) for log in logs]
        row["mmd_warmup_end"] = float(np.mean(warm))
        row["steps"] = int(logs[0]["config"]["steps"])
        row["real_diversity"] = float(np.mean([log["diagnostics"]["reference"]["real_diversity"] for log in logs]))
        grads = {}
        for term in ("ins", "group", "pair"):
            vals = [r[f"grad_{term}"] for log in logs for r in log["steps"]
                    if f"grad_{term}" in r and r["step"] >= log["config"]["warmup"] and r[f"grad_{term}"] > 0]
            grads[term] = float(np.median(vals)) if vals else 0.0
        row.update({f"grad_{k}": v for k, v in grads.items()})
        rows.append(row)
    return rows


def real_subset_reference(study: dict[str, Any], draws: int = 20) -> dict[str, float]:
    """The diagnostics of n *real* patches drawn at random from each study image (n as the
    synthetic sets have), mean over images and draws: what selecting instead of condensing gives."""
    import torch

    from idc.condense.diagnostics import DIAGNOSTIC_KEYS, QualityMonitor
    from idc.condense.memorisation import nearest_real_psnr
    from idc.data.store import PatchStore

    out = Path(study["out"])
    store = PatchStore(out / "data" / "train_patches.h5")
    runs = _runs(study)
    n = next(log["n_synthetic"] for logs in runs.values() for log in logs)
    gen = torch.Generator().manual_seed(int(study.get("seed", 0)))
    values: dict[str, list[float]] = {k: [] for k in DIAGNOSTIC_KEYS}
    for image_id in study_image_ids(out / "data" / "train_patches.h5", int(study["images"])):
        real = torch.from_numpy(store.read_lr(store.indices_of_image(image_id))).permute(0, 3, 1, 2).float() / 255.0
        monitor = QualityMonitor(real)
        for _ in range(draws):
            perm = torch.randperm(len(real), generator=gen)
            d = monitor.measure(real[perm[:n]])
            # coverage of the patches not drawn: a drawn patch covers itself exactly (capped PSNR)
            held_out, _ = nearest_real_psnr(monitor.real_u8[perm[n:].numpy()], monitor.real_u8[perm[:n].numpy()])
            d["coverage_psnr"] = float(np.mean(held_out))
            for k in DIAGNOSTIC_KEYS:
                values[k].append(d[k])
    return {k: float(np.mean(v)) for k, v in values.items()} | {"n": n, "draws": draws}


def downstream_results(study: dict[str, Any]) -> list[dict[str, Any]]:
    folder = Path(study["out"]) / "downstream" / "sr"
    if not folder.is_dir():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/result.json"))]


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def plot_study_figures(study: dict[str, Any], fig_dir: Path) -> list[Path]:
    """Diagnostic curves per setting (mean over images), and patch grids over steps."""
    from matplotlib import colormaps

    from idc.condense.diagnostics import DIAG_PREFIX
    from idc.report.figures import new_figure, save_figure

    colours = colormaps["tab20"]  # 20 distinct colours: one per setting
    fig_dir.mkdir(parents=True, exist_ok=True)
    runs = _runs(study)
    figure = new_figure((1400, 900), 100)
    keys = ["mmd", "colour_mean_gap", "diversity", "coverage_psnr"]
    titles = {"mmd": "MMD$^2$ (random-conv descriptors), lower is closer",
              "colour_mean_gap": "colour mean gap (pixels in [0,1])",
              "diversity": "diversity: mean pairwise RMS distance",
              "coverage_psnr": "coverage: real -> nearest synthetic PSNR (dB)"}
    panels = figure.subplots(2, 2)
    for axes, key in zip(panels.flat, keys):
        for k, (name, logs) in enumerate(runs.items()):
            if not logs:
                continue
            steps = [r["step"] for r in logs[0]["steps"] if DIAG_PREFIX + key in r]
            values = np.mean([[r[DIAG_PREFIX + key] for r in log["steps"] if DIAG_PREFIX + key in r][:len(steps)]
                              for log in logs], axis=0)
            axes.plot(steps, values, label=name, linewidth=1.2, color=colours(k % 20),
                      linestyle="--" if k % 2 else "-")
        if key == "mmd":
            axes.set_yscale("log")
        if key == "diversity" and runs:
            ref = np.mean([log["diagnostics"]["reference"]["real_diversity"] for logs in runs.values() for log in logs])
            axes.axhline(ref, color="k", linestyle=":", linewidth=1, label="real patches")
        axes.set_title(titles[key], fontsize=10)
        axes.set_xlabel("step")
        axes.grid(True, alpha=0.3)
    panels.flat[0].legend(fontsize=7, ncol=2)
    figure.suptitle(f"Condensation diagnostics over steps (mean over {study['images']} images)")
    figure.subplots_adjust(left=0.06, right=0.98, bottom=0.07, top=0.92, hspace=0.3, wspace=0.15)
    written = [save_figure(figure, fig_dir / "study_diagnostics.png", 100)]
    written.append(plot_snapshot_grid(study, fig_dir / "study_patches.png"))
    return written


def plot_snapshot_grid(study: dict[str, Any], out_png: Path) -> Path:
    """Rows: settings; columns: the first study image's synthetic patches at each snapshot step,
    then the image's real patches."""
    from idc.condense.stage import load_snapshots
    from idc.data.store import PatchStore
    from idc.report.figures import new_figure, save_figure

    out = Path(study["out"])
    store = PatchStore(out / "data" / "train_patches.h5")
    image_id = study_image_ids(out / "data" / "train_patches.h5", int(study["images"]))[0]
    names = [n for n in study["settings"] if (out / "runs" / n / f"{image_id:04d}.snapshots.npz").is_file()]
    if not names:
        raise ValueError(f"no snapshots under {out / 'runs'}")
    grids = {n: load_snapshots(out / "runs" / n / f"{image_id:04d}.snapshots.npz") for n in names}
    steps = grids[names[0]][0]
    k = grids[names[0]][1].shape[1]
    real = store.read_lr(store.indices_of_image(image_id))[:k]
    figure = new_figure((180 * (len(steps) + 1), 110 * (len(names)) + 60), 100)
    axes = figure.subplots(len(names), len(steps) + 1, squeeze=False)
    for r, name in enumerate(names):
        s, patches = grids[name]
        for c in range(len(steps) + 1):
            ax = axes[r][c]
            tiles = real if c == len(steps) else patches[c]
            ax.imshow(np.concatenate(list(tiles), axis=1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title("real" if c == len(steps) else f"step {int(s[c])}", fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    figure.suptitle(f"Synthetic LR patches of study image {image_id} over steps, per setting")
    figure.subplots_adjust(left=0.14, right=0.99, bottom=0.01, top=0.9, hspace=0.08, wspace=0.04)
    return save_figure(figure, out_png, 100)


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
