"""The option files of an export train as they are in each framework: every dataset block is
resolved with that framework's own path rules into pairs equal to the patch store.

BasicSR (``basicsr-fixed``) is loaded for real where installed: its option parser
(``parse_options``, with ``--force_yml num_gpu=0``), its dataset registry (``build_dataset``) and
model builder (``build_model``, one optimisation step of EDSR on the CPU). Its import needs
torchvision, whose CPU build is not on PyPI for this torch; a stand-in module that fails when
called takes its place (no torchvision function is called on these code paths). MambaIR,
traiNNer-redux and neosr are not installable from PyPI here (MambaIR and traiNNer-redux are
repositories without a package; neosr 0.1.0 requires Python 3.12): their rules, as their sources
state them (cited in :mod:`idc.data.train_options`), are reproduced below.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from idc.data.lmdb_store import LmdbImages
from idc.data.paired import CARD_NAME, export_paired
from idc.data.store import PatchStore, write_patch_store
from idc.data.train_options import FRAMEWORKS, to_toml
from tests.workflow_helpers import _env

tomllib = pytest.importorskip("tomllib")

SCALE = 4
N = 9


def _store(path: Path, n: int = N, hr: int = 32) -> Path:
    rng = np.random.default_rng(5)
    write_patch_store(path, rng.integers(0, 256, (n, hr // SCALE, hr // SCALE, 3), dtype=np.uint8),
                      rng.integers(0, 256, (n, hr, hr, 3), dtype=np.uint8), np.arange(n) % 3,
                      np.stack([np.arange(n) * SCALE, np.zeros(n, int)], 1), scale=SCALE, source="t", seed=1)
    return path


def _pairs_of_store(store: Path) -> tuple[np.ndarray, np.ndarray]:
    with PatchStore(store) as s:
        return s.read(np.arange(len(s)))


def _img(path: str | Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _option(out: Path, framework: str) -> dict:
    path = out / FRAMEWORKS[framework].format(scale=SCALE)
    text = path.read_text()
    return tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)


def _resolve(root: Path, path: str) -> Path:
    """A path as a framework opens it from the folder it runs in."""
    return Path(path) if os.path.isabs(path) else root / path


# ---------------------------------------------------------------- the frameworks' rules
def basicsr_pairs(ds: dict, cwd: Path) -> list[tuple[Path | str, Path | str]]:
    """BasicSR / MambaIR PairedImageDataset: lmdb, else meta-info file, else folder mode."""
    gt, lq = ds["dataroot_gt"], ds["dataroot_lq"]
    tmpl = ds.get("filename_tmpl", "{}")
    if ds["io_backend"]["type"] == "lmdb":
        assert gt.endswith(".lmdb") and lq.endswith(".lmdb")
        keys = [[line.split(".")[0] for line in (_resolve(cwd, p) / "meta_info.txt").read_text().splitlines()]
                for p in (lq, gt)]
        assert set(keys[0]) == set(keys[1])
        return [(key, key) for key in sorted(keys[1])]
    if ds.get("meta_info_file") is not None:
        pairs = []
        for line in _resolve(cwd, ds["meta_info_file"]).read_text().splitlines():
            gt_name = line.strip().split(" ")[0]
            stem, ext = os.path.splitext(os.path.basename(gt_name))
            pairs.append((_resolve(cwd, lq) / f"{tmpl.format(stem)}{ext}", _resolve(cwd, gt) / gt_name))
        return pairs
    lq_names = sorted(os.listdir(_resolve(cwd, lq)))
    gt_names = sorted(os.listdir(_resolve(cwd, gt)))
    assert len(lq_names) == len(gt_names)
    pairs = []
    for name in gt_names:
        stem, ext = os.path.splitext(name)
        assert f"{tmpl.format(stem)}{ext}" in lq_names
        pairs.append((_resolve(cwd, lq) / f"{tmpl.format(stem)}{ext}", _resolve(cwd, gt) / name))
    return pairs


# traiNNer-redux DatasetOptions (traiNNer/utils/redux_options.py; forbid_unknown_fields): the keys
# a paired fidelity dataset may use (the degradation keys of on-the-fly datasets left out).
REDUX_DATASET_KEYS = {
    "name", "type", "io_backend", "num_worker_per_gpu", "batch_size_per_gpu", "accum_iter", "use_hflip",
    "use_rot", "mean", "std", "gt_size", "lq_size", "color", "phase", "scale", "dataset_enlarge_ratio",
    "prefetch_mode", "pin_memory", "persistent_workers", "num_prefetch_queue", "prefetch_factor",
    "clip_size", "dataroot_gt", "dataroot_lq", "lq_resize_mode", "meta_info", "filename_tmpl",
}


def redux_pairs(ds: dict, cwd: Path) -> list[tuple[Path, Path]]:
    """traiNNer-redux folder mode (data_util.paired_paths_from_folder): per pair of root folders,
    recursive scans; with filename_tmpl '{}' stems must match one to one, otherwise each GT file
    (name order) whose templated stem is an LQ stem is paired and the rest is skipped."""
    pairs = []
    for lq_root, gt_root in zip(ds["dataroot_lq"], ds["dataroot_gt"], strict=True):
        lq_dir, gt_dir = _resolve(cwd, lq_root), _resolve(cwd, gt_root)
        lq_names = [p.relative_to(lq_dir).as_posix() for p in lq_dir.rglob("*") if p.is_file()]
        gt_names = [p.relative_to(gt_dir).as_posix() for p in gt_dir.rglob("*") if p.is_file()]
        lq_by_stem = {os.path.splitext(n)[0]: n for n in lq_names}
        tmpl = ds.get("filename_tmpl", "{}")
        if tmpl == "{}":
            assert set(lq_by_stem) == {os.path.splitext(n)[0] for n in gt_names}
        for gt_name in sorted(gt_names):
            stem = tmpl.format(os.path.splitext(os.path.basename(gt_name))[0])
            stem = os.path.join(os.path.dirname(gt_name), stem) if os.path.dirname(gt_name) else stem
            if stem in lq_by_stem:
                pairs.append((lq_dir / lq_by_stem[stem], gt_dir / gt_name))
    return pairs


def neosr_pairs(ds: dict, cwd: Path) -> list[tuple[Path | str, Path | str]]:
    """neosr `paired` (data/paired_dataset.py, data_util.py): roots normalised by
    str(Path(x).expanduser()); both ending in 'lmdb': LMDB with one key for both; else every
    image (.jpg .jpeg .png .webp, recursive) of the GT root pairs with the path that has the GT
    root replaced by the LQ root, and both roots hold equally many images."""
    gt = str(Path(ds["dataroot_gt"]).expanduser())
    lq = str(Path(ds["dataroot_lq"]).expanduser())
    if gt.endswith("lmdb") and lq.endswith("lmdb"):
        keys = [line.split(".")[0] for line in (_resolve(cwd, gt) / "meta_info.txt").read_text().splitlines()]
        return [(key, key) for key in keys]
    ext = (".jpg", ".jpeg", ".png", ".webp")
    base = cwd if not os.path.isabs(gt) else Path("/")

    def scan(root: str) -> list[str]:
        return sorted(os.path.join(root, p.relative_to(_resolve(cwd, root)).as_posix())
                      for p in _resolve(cwd, root).rglob("*") if p.is_file() and p.name.lower().endswith(ext))

    lq_paths, gt_paths = scan(lq), scan(gt)
    assert len(lq_paths) == len(gt_paths)
    pairs = []
    for gt_path in gt_paths:
        lq_path = gt_path.replace(gt, lq)
        assert lq_path in lq_paths, lq_path
        pairs.append((base / lq_path, base / gt_path))
    return pairs


def _check_pairs(pairs, store: Path, out: Path | None = None, lmdb: tuple[str, str] | None = None) -> None:
    """Every pair exists and equals the store's pair of the same position (names start with it)."""
    lr_ref, hr_ref = _pairs_of_store(store)
    assert len(pairs) == len(hr_ref)
    if lmdb:
        with LmdbImages(out / lmdb[1]) as lq_db, LmdbImages(out / lmdb[0]) as gt_db:
            for lq_key, gt_key in pairs:
                k = int(gt_key.split("_")[0])
                assert np.array_equal(lq_db.read(lq_key), lr_ref[k]) and np.array_equal(gt_db.read(gt_key), hr_ref[k])
        return
    for lq_path, gt_path in pairs:
        assert Path(lq_path).is_file() and Path(gt_path).is_file(), (lq_path, gt_path)
        k = int(Path(gt_path).name.split("_")[0])
        assert np.array_equal(_img(gt_path), hr_ref[k]) and np.array_equal(_img(lq_path), lr_ref[k])


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frameworks")
    store = _store(tmp / "s.h5")
    runs = tmp / "runs"  # where a user trains from, for --root
    runs.mkdir()
    return {
        "store": store,
        "runs": runs,
        "suffix": export_paired(tmp / "exp", store, scale=SCALE),
        "same": export_paired(tmp / "data" / "exp-same", store, scale=SCALE, lr_names="same", root=runs),
        "lmdb": export_paired(tmp / "exp-lmdb", store, scale=SCALE, fmt="lmdb"),
    }


def test_option_files_written_per_naming_and_format(exports):
    def names(out):
        return sorted(p.name for p in out.iterdir() if p.name.startswith("train_"))

    assert names(exports["suffix"]) == sorted(FRAMEWORKS[f].format(scale=SCALE)
                                              for f in ("basicsr", "mambair", "traiNNer-redux"))
    assert names(exports["same"]) == sorted(f.format(scale=SCALE) for f in FRAMEWORKS.values())
    assert names(exports["lmdb"]) == sorted(FRAMEWORKS[f].format(scale=SCALE) for f in ("basicsr", "mambair", "neosr"))
    card = yaml.safe_load((exports["suffix"] / CARD_NAME).read_text())
    assert "neosr" in card["layout"]["options"]["not written"] and card["layout"]["options"]["paths"] == "absolute"
    card = yaml.safe_load((exports["lmdb"] / CARD_NAME).read_text())
    assert "traiNNer-redux" in card["layout"]["options"]["not written"]


@pytest.mark.parametrize("kind", ["suffix", "same", "lmdb"])
def test_basicsr_and_mambair_blocks_pair_every_patch(exports, kind):
    out = exports[kind]
    cwd = exports["runs"] if kind == "same" else Path("/nonexistent-cwd")
    for framework in ("basicsr", "mambair"):
        opt = _option(out, framework)
        ds = opt["datasets"]["train"]
        assert ds["type"] == "PairedImageDataset" and opt["scale"] == SCALE
        if kind == "same":
            assert not os.path.isabs(ds["dataroot_gt"])  # relative to --root
        else:
            assert os.path.isabs(ds["dataroot_gt"])
        if framework == "mambair":
            assert ds["task"] == "SR"  # MambaIR's PairedImageDataset: other tasks read grayscale/noise
        assert ds["gt_size"] % SCALE == 0 and ds["gt_size"] <= 32
        lmdb = ("HR.lmdb", f"LR_bicubic_X{SCALE}.lmdb") if kind == "lmdb" else None
        _check_pairs(basicsr_pairs(ds, cwd), exports["store"], out, lmdb)


@pytest.mark.parametrize("kind", ["suffix", "same"])
def test_trainner_redux_block_uses_its_keys_and_folder_mode(exports, kind):
    opt = _option(exports[kind], "traiNNer-redux")
    ds = opt["datasets"]["train"]
    assert set(ds) <= REDUX_DATASET_KEYS, set(ds) - REDUX_DATASET_KEYS
    assert "meta_info" not in ds and "gt_size" not in ds and ds["lq_size"] <= 32 // SCALE
    assert ds["type"] == "pairedimagedataset" and isinstance(ds["dataroot_gt"], list)
    cwd = exports["runs"] if kind == "same" else Path("/nonexistent-cwd")
    _check_pairs(redux_pairs(ds, cwd), exports["store"])


@pytest.mark.parametrize("kind", ["same", "lmdb"])
def test_neosr_block_pairs_by_identical_names(exports, kind):
    opt = _option(exports[kind], "neosr")
    ds = opt["datasets"]["train"]
    assert ds["type"] == "paired" and opt["model_type"] == "image" and ds["patch_size"] <= 32 // SCALE
    cwd = exports["runs"] if kind == "same" else Path("/nonexistent-cwd")
    lmdb = ("HR.lmdb", f"LR_bicubic_X{SCALE}.lmdb") if kind == "lmdb" else None
    _check_pairs(neosr_pairs(ds, cwd), exports["store"], exports[kind], lmdb)


def test_the_networks_named_take_the_official_constructor_keys(exports):
    """MambaIR's network_g block builds our MambaIRv2-light (kwargs named as the official
    constructor), and the EDSR block has BasicSR's EDSR argument names."""
    from idc.archs import build_model

    net = dict(_option(exports["suffix"], "mambair")["network_g"])
    assert net.pop("type") == "MambaIRv2Light"
    model = build_model("mambairv2_light", **net)
    assert 700_000 < sum(p.numel() for p in model.parameters()) < 900_000  # ~0.79M (paper: light)
    edsr = _option(exports["suffix"], "basicsr")["network_g"]
    assert {k for k in edsr if k != "type"} == {"num_in_ch", "num_out_ch", "num_feat", "num_block", "upscale",
                                                "res_scale", "img_range", "rgb_mean"}


def test_toml_writer_round_trips_through_tomllib():
    data = {"a": 1, "b": 'C:\\data\\gt "x"\n', "c": [0.5, 2e-4], "d": True, "e": None, "ü": "日本",
            "t": {"x": 1, "u": {"y": [1, 2]}}, "z": {"w": "v"}}
    back = tomllib.loads(to_toml(data))
    expected = {k: v for k, v in data.items() if k != "e"}
    assert back == expected


# ---------------------------------------------------------------- BasicSR itself
_BASICSR_SCRIPT = r'''
import copy, json, sys, types
import numpy as np

class _Absent(types.ModuleType):  # torchvision stand-in: importable, fails when used
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        def absent(*args, **kwargs):
            raise RuntimeError(f"torchvision stand-in: {self.__name__}.{name} was called")
        return absent

for mod in ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
            "torchvision.transforms.functional_tensor", "torchvision.utils", "torchvision.models",
            "torchvision.ops"):
    module = _Absent(mod)
    module.__path__ = []
    module.__version__ = "0.0-stand-in"
    sys.modules[mod] = module

import torch
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.utils.options import parse_options

option_file, root = sys.argv[1], sys.argv[2]
sys.argv = ["train.py", "-opt", option_file, "--force_yml", "num_gpu=0"]
opt, _ = parse_options(root, is_train=True)
val_opt = copy.deepcopy(opt["datasets"]["train"])  # datasets pop keys of their io_backend dict
val_opt["phase"] = "val"  # no random crop or flips: every pair as stored
val = build_dataset(val_opt)
pairs = []
for k in range(len(val)):
    x = val[k]
    gt = (x["gt"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    lq = (x["lq"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
    pairs.append([str(x["gt_path"]), gt.tolist(), lq.tolist()])
# python-lmdb opens a database once per process: close the first dataset's before the second
for env in getattr(getattr(val.file_client, "client", None), "_client", {}).values():
    env.close()
train = build_dataset(opt["datasets"]["train"])
item = train[0]
model = build_model(opt)
batch = {"lq": item["lq"][None].repeat(2, 1, 1, 1), "gt": item["gt"][None].repeat(2, 1, 1, 1)}
model.feed_data(batch)
model.optimize_parameters(1)
print(json.dumps({"n_train": len(train), "train_gt": list(item["gt"].shape), "train_lq": list(item["lq"].shape),
                  "net": type(model.net_g).__name__, "loss": float(model.log_dict["l_pix"]), "pairs": pairs}))
'''


@pytest.mark.parametrize("kind", ["suffix", "lmdb"])
def test_basicsr_parses_the_options_reads_every_pair_and_trains_a_step(exports, kind, tmp_path):
    # basicsr's own import needs torchvision (stood in for in the subprocess): look it up only
    if any(importlib.util.find_spec(m) is None for m in ("basicsr", "cv2", "addict", "yapf")):
        pytest.skip("BasicSR not installed (pip install --no-deps basicsr-fixed addict yapf "
                    "opencv-python-headless)")
    if kind == "lmdb":
        pytest.importorskip("lmdb")
    option_file = exports[kind] / FRAMEWORKS["basicsr"].format(scale=SCALE)
    proc = subprocess.run([sys.executable, "-c", _BASICSR_SCRIPT, str(option_file), str(tmp_path)],
                          capture_output=True, text=True, env=_env(), timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["n_train"] == N and result["net"] == "EDSR" and np.isfinite(result["loss"])
    gt_size = yaml.safe_load(option_file.read_text())["datasets"]["train"]["gt_size"]
    assert result["train_gt"] == [3, gt_size, gt_size] and result["train_lq"] == [3, gt_size // SCALE, gt_size // SCALE]
    lr_ref, hr_ref = _pairs_of_store(exports["store"])
    assert len(result["pairs"]) == N
    for gt_path, gt, lq in result["pairs"]:
        k = int(Path(gt_path).name.split("_")[0])
        assert np.array_equal(np.asarray(gt, np.uint8), hr_ref[k]) and np.array_equal(np.asarray(lq, np.uint8), lr_ref[k])
