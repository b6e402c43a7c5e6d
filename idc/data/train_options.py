"""Ready-to-run training option files for an exported set, one per SR training framework, with
the dataset block filled in. Each framework's own rules for finding pairs (read from its source,
see the notes; tests/test_export_frameworks.py reproduces them and loads BasicSR's for real):

BasicSR (``pip install basicsr-fixed``; the last ``basicsr`` release fails on import with current
torchvision) and MambaIR (a copy of BasicSR in its repository): ``PairedImageDataset``. Paths are
used as given, relative to where ``basicsr/train.py`` runs. Meta-info mode: the GT name is the
first space-separated field of each ``meta_info_file`` line, the LQ name
``filename_tmpl.format(GT stem) + GT extension`` in ``dataroot_lq``. LMDB mode (``io_backend:
lmdb``, both roots ending in ``.lmdb``): the keys of the two databases' ``meta_info.txt`` must be
equal, ``line.split('.')[0]``. Crops ``gt_size`` from the GT patch (``gt_size / scale`` from LQ).

traiNNer-redux: options are msgspec structs that reject unknown keys; the meta-info file is
``meta_info`` (its meta-info reader passes the characters of the key names ``'lq'``/``'gt'`` to a
thread map and yields ``l_path``/``g_path`` entries, so that mode is broken: folder mode is used),
crops are ``lq_size`` (LR pixels), roots are lists of folders. Folder mode with ``filename_tmpl``
other than ``'{}'``: every GT file in name order (recursive scan) whose templated stem is an LQ
stem; unmatched GT files are skipped silently, so the test checks that every pair is found. Its
LMDB mode lists keys but reads every image by path (``vipsimfrompath``): no LMDB option file.

neosr: TOML; ``type = "paired"``; pairs by identical relative file names (the LQ path is the GT
path with ``dataroot_gt`` replaced by ``dataroot_lq``), the two folders must hold equally many
images; its meta-info mode reads ``meta_info_file`` but tests ``meta_info`` and then pairs every
GT file with the LQ folder itself, so it is unusable. Needs an export with ``lr_names: same``.
Roots ending in ``lmdb`` switch to LMDB (same keys in both, as BasicSR). Crops ``patch_size``
(LR pixels).

The training settings besides the data are each framework's own example for the network named in
the file (BasicSR ``options/train/EDSR/train_EDSR_Mx4.yml`` without the x2 pretrain; MambaIR
``options/train/mambairv2/train_MambaIRv2_lightSR_x4.yml``; traiNNer-redux's paired fidelity
template with ``swinir_s``; neosr ``options/train_swinir.toml`` reduced to an L1 loss), the
networks of the paper's evaluation where the framework has them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["FRAMEWORKS", "option_files", "to_toml"]

# file name -> framework; which are written depends on the export's LR naming and format
FRAMEWORKS = {
    "basicsr": "train_basicsr_EDSR_x{scale}.yml",
    "mambair": "train_mambair_MambaIRv2Light_x{scale}.yml",
    "traiNNer-redux": "train_traiNNer-redux_SwinIR-S_x{scale}.yml",
    "neosr": "train_neosr_SwinIR-small_x{scale}.toml",
}


def _largest_multiple(limit: int, at_most: int, of: int) -> int:
    """The crop size: ``at_most`` when the patches allow it, else the largest multiple of ``of``
    that fits in ``limit``."""
    size = min(limit, at_most)
    return max(of, size - size % of)


def to_toml(data: dict[str, Any]) -> str:
    """TOML for nested mappings of str/int/float/bool/lists of those (tables after plain keys)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            if isinstance(v, float) and v != v:
                raise ValueError("TOML: NaN is not written")
            return repr(v)
        if isinstance(v, str):
            # JSON's escapes (\" \\ \n \t \uXXXX for control characters) are TOML's basic-string
            # escapes; non-ASCII text stays as UTF-8 (no surrogate \u pairs, which TOML refuses).
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"TOML: cannot write {type(v).__name__}")

    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k, ensure_ascii=False)

    def table(prefix: str, node: dict[str, Any]) -> None:
        plain = {k: v for k, v in node.items() if not isinstance(v, dict)}
        subs = {k: v for k, v in node.items() if isinstance(v, dict)}
        if prefix and (plain or not subs):
            lines.append(f"\n[{prefix}]")
        for k, v in plain.items():
            if v is None:
                continue  # TOML has no null: an absent key is the framework's default
            lines.append(f"{key(k)} = {value(v)}")
        for k, v in subs.items():
            table(f"{prefix}.{key(k)}" if prefix else key(k), v)

    table("", data)
    return "\n".join(lines).lstrip("\n") + "\n"


def option_files(
    *,
    export_dir: Path,
    root: Path | None,
    name: str,
    scale: int,
    hr_size: int,
    lr_size: int,
    hr_rel: str,
    lr_rel: str,
    meta_info: str | None,
    lr_tmpl: str,
    lmdb: tuple[str, str] | None = None,
) -> dict[str, str]:
    """``{file name: text}`` of the option files for an export at ``export_dir`` (its final,
    absolute location). Paths are absolute, or relative to ``root`` (the folder the user trains
    from) when given. ``lr_tmpl`` is ``'{}x4'`` or ``'{}'`` (LR files named as the HR files);
    ``lmdb`` = (GT database, LQ database) relative to the export for an LMDB export."""
    base = Path(os.path.abspath(export_dir))

    def where(rel: str) -> str:
        path = base / rel
        if root is None:
            return str(path)
        return Path(os.path.relpath(path, os.path.abspath(root))).as_posix()

    gt_size = _largest_multiple(hr_size, 192, scale)
    files: dict[str, str] = {}

    # ---- BasicSR and MambaIR (PairedImageDataset)
    if lmdb:
        data: dict[str, Any] = {"dataroot_gt": where(lmdb[0]), "dataroot_lq": where(lmdb[1]),
                                "io_backend": {"type": "lmdb"}}
    else:
        data = {"dataroot_gt": where(hr_rel), "dataroot_lq": where(lr_rel)}
        if meta_info:
            data["meta_info_file"] = where(meta_info)
        data["filename_tmpl"] = lr_tmpl
        data["io_backend"] = {"type": "disk"}
    files[FRAMEWORKS["basicsr"].format(scale=scale)] = _yaml(
        _basicsr_options(name, scale, data, gt_size),
        f"BasicSR (pip install basicsr-fixed): python basicsr/train.py -opt <this file>; "
        f"training data: the export {base.name}")
    files[FRAMEWORKS["mambair"].format(scale=scale)] = _yaml(
        _mambair_options(name, scale, data, gt_size),
        "MambaIR (its repository, with its bundled basicsr): python basicsr/train.py -opt <this file>")

    # ---- traiNNer-redux: folder mode only (its meta-info and LMDB modes are broken, see above)
    if not lmdb:
        redux = _redux_options(name, scale, where(hr_rel), where(lr_rel), lr_tmpl, _largest_multiple(lr_size, 64, 1))
        files[FRAMEWORKS["traiNNer-redux"].format(scale=scale)] = _yaml(
            redux, "traiNNer-redux: python train.py --opt <this file>")

    # ---- neosr: identical names (lr_names: same) or LMDB
    if lmdb or lr_tmpl == "{}":
        roots = ({"dataroot_gt": where(lmdb[0]), "dataroot_lq": where(lmdb[1])} if lmdb
                 else {"dataroot_gt": where(hr_rel), "dataroot_lq": where(lr_rel)})
        neosr = _neosr_options(name, scale, roots, _largest_multiple(lr_size, 64, 1))
        files[FRAMEWORKS["neosr"].format(scale=scale)] = (
            "# neosr: python train.py -opt <this file>\n" + to_toml(neosr))
    return files


def _basicsr_options(name: str, scale: int, data: dict[str, Any], gt_size: int) -> dict[str, Any]:
    """BasicSR's EDSR-M example with the export as its PairedImageDataset."""
    return {
        "name": f"{name}_EDSR_Mx{scale}",
        "model_type": "SRModel",
        "scale": scale,
        "num_gpu": 1,  # 0: CPU
        "manual_seed": 10,
        "datasets": {"train": {
            "name": name, "type": "PairedImageDataset", **data,
            "gt_size": gt_size, "use_hflip": True, "use_rot": True,
            "use_shuffle": True, "num_worker_per_gpu": 6, "batch_size_per_gpu": 16,
            "dataset_enlarge_ratio": 1, "prefetch_mode": None,
        }},
        "network_g": {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 16,
                      "upscale": scale, "res_scale": 1, "img_range": 255.0,
                      "rgb_mean": [0.4488, 0.4371, 0.4040]},
        "path": {"pretrain_network_g": None, "strict_load_g": True, "resume_state": None},
        "train": {
            "optim_g": {"type": "Adam", "lr": 1e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [200000], "gamma": 0.5},
            "total_iter": 300000, "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "logger": {"print_freq": 100, "save_checkpoint_freq": 5000, "use_tb_logger": True,
                   "wandb": {"project": None, "resume_id": None}},
        "dist_params": {"backend": "nccl", "port": 29500},
    }


def _mambair_options(name: str, scale: int, data: dict[str, Any], gt_size: int) -> dict[str, Any]:
    """MambaIR's MambaIRv2-light example (its bundled BasicSR) with the export as its dataset."""
    return {
        "name": f"{name}_MambaIRv2Light_x{scale}",
        "model_type": "MambaIRv2LightModel",
        "scale": scale,
        "num_gpu": 1,
        "manual_seed": 10,
        "datasets": {"train": {
            "task": "SR", "name": name, "type": "PairedImageDataset", **data,
            "gt_size": gt_size, "use_hflip": True, "use_rot": True,
            "use_shuffle": True, "num_worker_per_gpu": 8, "batch_size_per_gpu": 16,
            "dataset_enlarge_ratio": 1, "prefetch_mode": None,
        }},
        "network_g": {"type": "MambaIRv2Light", "upscale": scale, "in_chans": 3, "img_size": 64,
                      "img_range": 1.0, "embed_dim": 48, "d_state": 8, "depths": [5, 5, 5, 5],
                      "num_heads": [4, 4, 4, 4], "window_size": 16, "inner_rank": 32, "num_tokens": 64,
                      "convffn_kernel_size": 5, "mlp_ratio": 1.0, "upsampler": "pixelshuffledirect",
                      "resi_connection": "1conv"},
        "path": {"pretrain_network_g": None, "strict_load_g": False, "resume_state": None},
        "train": {
            "optim_g": {"type": "Adam", "lr": 2e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [250000, 400000, 450000, 475000], "gamma": 0.5},
            "total_iter": 500000, "warmup_iter": -1,
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0, "reduction": "mean"},
        },
        "logger": {"print_freq": 200, "save_checkpoint_freq": 5000, "use_tb_logger": True,
                   "wandb": {"project": None, "resume_id": None}},
        "dist_params": {"backend": "nccl", "port": 29500},
    }


def _redux_options(name: str, scale: int, gt_dir: str, lq_dir: str, lr_tmpl: str, lq_size: int) -> dict[str, Any]:
    """traiNNer-redux's SwinIR-S example in folder mode (its meta-info and LMDB modes are broken)."""
    return {
        "name": f"{name}_SwinIR-S_x{scale}",
        "scale": scale,
        "use_amp": True,
        "amp_bf16": False,
        "use_channels_last": True,
        "fast_matmul": False,
        "use_compile": False,
        "num_gpu": "auto",
        "manual_seed": 10,
        "datasets": {"train": {
            "name": name, "type": "pairedimagedataset",
            "dataroot_gt": [gt_dir], "dataroot_lq": [lq_dir],
            "filename_tmpl": lr_tmpl, "lq_size": lq_size, "use_hflip": True, "use_rot": True,
            "num_worker_per_gpu": 8, "batch_size_per_gpu": 8, "accum_iter": 1,
        }},
        "network_g": {"type": "swinir_s"},
        "path": {"strict_load_g": True, "resume_state": None},
        "train": {
            "ema_decay": 0.999, "ema_power": 0.75, "grad_clip": False,
            "optim_g": {"type": "AdamW", "lr": 2e-4, "weight_decay": 0, "betas": [0.9, 0.99]},
            "scheduler": {"type": "MultiStepLR", "milestones": [250000, 400000, 450000, 475000],
                          "gamma": 0.5},
            "total_iter": 500000, "warmup_iter": -1,
            "losses": [{"type": "l1loss", "loss_weight": 1.0}],
        },
        # no validation set: add one (`datasets.val`, then val_enabled: true)
        "val": {"val_enabled": False, "val_freq": 5000, "save_img": False, "tile_size": 0,
                "tile_overlap": 8, "metrics_enabled": False},
        "logger": {"print_freq": 100, "save_checkpoint_freq": 5000,
                   "save_checkpoint_format": "safetensors", "use_tb_logger": True},
    }


def _neosr_options(name: str, scale: int, roots: dict[str, str], patch_size: int) -> dict[str, Any]:
    """neosr's SwinIR-small example; neosr pairs LR and HR files by identical names."""
    return {
        "name": f"{name}_swinir_small_x{scale}",
        "model_type": "image",
        "scale": scale,
        "use_amp": True,
        "bfloat16": True,
        "manual_seed": 10,
        "datasets": {"train": {"type": "paired", **roots,
                               "patch_size": patch_size, "batch_size": 8}},
        "network_g": {"type": "swinir_small"},
        "train": {
            "ema": 0.999,
            "total_iter": 500000,
            "optim_g": {"type": "adamw", "lr": 2e-4, "betas": [0.9, 0.99], "weight_decay": 0.0},
            "scheduler": {"type": "MultiStepLR", "milestones": [250000, 400000, 450000, 475000],
                          "gamma": 0.5},
            "pixel_opt": {"type": "L1Loss", "loss_weight": 1.0},
        },
        "logger": {"total_iter": 500000, "save_checkpoint_freq": 5000, "use_tb_logger": True},
    }


def _yaml(data: dict[str, Any], header: str) -> str:
    body = yaml.safe_dump(data, sort_keys=False, width=100, default_flow_style=None)
    return f"# {header}\n# Written by `python -m idc export`; paths as given at export.\n{body}"
