# Everything that is not a rule: validation, paths, id lists, config slices, wildcard constraints.

import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from idc.config import (
    ConfigError,
    check_ratios,
    read_config_file,
    replicate_members,
    validate_config,
    verdict_methods,
)
from idc.resources import (
    inference_gpus,
    selection_gpus,
    selection_uses_teacher,
    test_gpus,
    upsampler_gpus,
)
from idc.runloop import derive_seed
from idc.select.methods import (
    CONDENSATION_METHODS,
    SELECTION_METHODS,
    selector_settings,
)
from idc.sr.distributed import check_training_ranks, job_ranks
from idc.versions import IMPL_VERSIONS as IMPL

try:
    # Snakemake's own reading keeps a duplicated key's last value: read strictly once more.
    for _path in workflow.configfiles:
        read_config_file(_path)
    validate_config(config)
    check_training_ranks(config)
except (ConfigError, ValueError) as err:
    # One line naming the key, before any job is planned.
    sys.exit(f"error: {err}")


RESULTS = f"results/{config['run']}"
RESUME = f"{RESULTS}/resume"  # checkpoints of interrupted jobs; never a declared output
TRAIN = config["data"]["trainset"]
SCALE = config["scale"]
STORE = f"{RESULTS}/data/train_patches.h5"


def derived_seed(*keys):
    """A seed for one job, derived from the master seed and the job's identity (ints or names)."""
    return derive_seed(config["seed"], *keys)


def canonical(obj):
    """A config slice with its keys sorted at every level: Snakemake compares params by their
    text, so the order keys happen to have in a YAML file must not count as a change."""
    return json.loads(json.dumps(obj, sort_keys=True))


# Teachers the workflow trains, and those converted from released weights (`weights` set).
IMPORTED_TEACHERS = [k for k, t in config["teachers"].items() if t.get("weights")]
TRAINED_TEACHERS = [k for k in config["teachers"] if k not in IMPORTED_TEACHERS]


def get_network_spec(section, name):
    """What defines a trained network: architecture, constructor and training recipe."""
    spec = config[section][name]
    return canonical({k: spec[k] for k in ("arch", "kwargs", "train")})


def _checked_folder(key, path):
    path = Path(path)
    if not path.is_dir():
        sys.exit(f"error: config key {key}: folder {path} does not exist")
    return path


# ---------------------------------------------------------------- training images
def train_hr_dir():
    if TRAIN["source"] == "div2k":
        return TRAIN["div2k_local_dir"] or f"{RESULTS}/data/DIV2K_train_HR"
    if TRAIN["source"] == "demo":
        return f"{RESULTS}/data/demo/train/HR"
    return str(_checked_folder("data.trainset.folder", TRAIN["folder"]))


def train_lr_dir():
    """The provided LR folder (official DIV2K X4), or None when LR comes from our imresize."""
    if (
        TRAIN["source"] == "div2k"
        and TRAIN["div2k_official_lr"]
        and not TRAIN["div2k_local_dir"]
    ):
        return f"{RESULTS}/data/DIV2K_train_LR_bicubic/X{SCALE}"
    return None


def div2k_outputs():
    outputs = {"hr": directory(f"{RESULTS}/data/DIV2K_train_HR")}
    if train_lr_dir():
        outputs["lr"] = directory(train_lr_dir())
    return outputs


def train_hr_files():
    """The training images on disk (folder or local DIV2K copy), in image-id order, cut to the
    first `data.trainset.images` when that is set."""
    from idc.data.images import list_images

    return list_images(train_hr_dir())[: TRAIN["images"]]


def train_image_stems():
    """Image names (file stems) of the training set, in the order that defines image ids."""
    if TRAIN["source"] == "div2k":
        return [f"{i:04d}" for i in range(1, 801)][: TRAIN["images"]]
    if TRAIN["source"] == "demo":
        from idc.data.demo import DEMO_TRAIN

        return sorted(DEMO_TRAIN)
    from idc.names import check_name

    # The same listing (and order) that gives the patch store its image ids; a stem names the
    # image's condensation log, so it follows the rule of path components.
    try:
        stems = [check_name(p.stem, f"training image {p}") for p in train_hr_files()]
    except (OSError, ValueError) as err:
        sys.exit(f"error: config key data.trainset.folder: {err}")
    if not stems:
        sys.exit(
            f"error: config key data.trainset.folder: no images in {train_hr_dir()}"
        )
    return stems


IMAGES = train_image_stems()
IMAGE_INDEX = {stem: i for i, stem in enumerate(IMAGES)}


def train_patch_counts():
    """Patches per training image when they can be known before cropping (images on disk:
    a folder or a local DIV2K copy; headers only), else None."""
    if TRAIN["source"] == "demo" or (
        TRAIN["source"] == "div2k" and not TRAIN["div2k_local_dir"]
    ):
        return None
    from idc.data.crop import image_patch_counts

    key = "data.trainset." + (
        "folder" if TRAIN["source"] == "folder" else "div2k_local_dir"
    )
    try:
        crop = config["data"]["crop"]
        return image_patch_counts(
            train_hr_files(),
            scale=SCALE,
            hr_size=crop["hr_size"],
            step=crop["step"],
            thresh=crop["thresh"],
        )
    except (OSError, ValueError) as err:
        sys.exit(f"error: config key {key}: {err}")


# Patches per training image, or None where only the crop job can tell (demo, DIV2K download).
TRAIN_PATCH_COUNTS = train_patch_counts()

try:
    # Each ratio must keep at least one patch: found here, not after the crop job ran.
    check_ratios(config, TRAIN_PATCH_COUNTS)
except ConfigError as err:
    sys.exit(f"error: {err}")


# ---------------------------------------------------------------- test sets
def testset_dir(name):
    """Prepared test set: <dir>/HR (mod-cropped) and <dir>/LR_bicubic/X<scale>."""
    return f"{RESULTS}/data/testsets/{name}"


def get_testset_sources(name):
    spec = config["data"]["testsets"][name]
    if spec["source"] == "demo":
        return {"hr": f"{RESULTS}/data/demo/test/HR", "lr": None}
    root = Path(config["data"]["benchmark_root"])
    hr = Path(spec["hr"]) if Path(spec["hr"]).is_absolute() else root / spec["hr"]
    lr = None
    if spec["lr"]:
        lr = Path(spec["lr"]) if Path(spec["lr"]).is_absolute() else root / spec["lr"]
        lr = str(lr) if lr.is_dir() else None  # absent LR folder: made by our imresize
    return {"hr": str(hr), "lr": lr}


def testsets_in_use():
    names = []
    for target in config["targets"]:
        for name in config["tables"][target]["testsets"]:
            if name not in names:
                names.append(name)
    if config["data"]["validation"] and config["data"]["validation"] not in names:
        names.append(config["data"]["validation"])
    return names


def validation_dir():
    name = config["data"]["validation"]
    return testset_dir(name) if name else []


# ---------------------------------------------------------------- datasets and jobs
DATASETS = config["datasets"]
SELECTION_DATASETS = [
    k for k, d in DATASETS.items() if d["method"] in SELECTION_METHODS
]
IDC_DATASETS = [k for k, d in DATASETS.items() if d["method"] in CONDENSATION_METHODS]
# Replicates of a folder dataset train on one import (the folder is the same; only the SR model
# seed differs), made under the entry's own key.
FOLDER_DATASETS = [
    k
    for k, d in DATASETS.items()
    if d["method"] == "folder" and (d["replicate_of"] or k) == k
]
# Real-patch datasets whose HR side is the up-sampler teacher's (the relabelling control).
RELABELLED_DATASETS = [k for k, d in DATASETS.items() if d["hr_source"] == "teacher"]


def teacher_path(name):
    return f"{RESULTS}/teachers/{name}/model.safetensors"


def condense_key(dataset):
    """Folder of one condensation run: variant and ratio define the synthetic LR patches, the
    up-sampler does not, so datasets differing only in up-sampler share one condensation.
    """
    spec = DATASETS[dataset]
    # Positional notation: str(1e-05) has an exponent, which the key's pattern does not allow.
    ratio = np.format_float_positional(spec["ratio"], trim="-")
    return f"{spec['variant']}_r{ratio}_s{spec['replicate']}"


def condense_images(dataset):
    """The images condensed for an IDC dataset: the first `images` of the training set, less
    those whose budget share is 0 when the patch counts are known before cropping (at r = 1% most
    images keep no pair: a job each would only write an empty file)."""
    k = DATASETS[dataset]["images"]
    images = IMAGES if k is None else IMAGES[:k]
    if TRAIN_PATCH_COUNTS is None:
        return images
    shares = synthetic_shares(condense_key(dataset))
    return [s for s in images if shares[IMAGE_INDEX[s]] > 0]


def synthetic_shares(ckey):
    """Synthetic patches of every training image under a condensation's budget rule, as each
    condensation job computes them from the store (the same counts, the same rule)."""
    from idc.condense.config import CondenseConfig, resolve_condense_config

    variant, ratio, _ = parse_condense_key(ckey)
    resolved = resolve_condense_config(
        config["condense"]["params"], variant=variant, ratio=ratio
    )
    return CondenseConfig.from_dict(resolved).synthetic_counts(TRAIN_PATCH_COUNTS)


def get_condense_params(wildcards):
    """The resolved condensation settings of one run (variant overrides on top of config) that
    define its result; execution settings (fast path, logging, compilation) are left out, so a
    change to them reruns nothing. The job script takes those from the config itself.
    """
    from idc.condense.config import resolve_condense_config, split_execution_settings

    variant, ratio, _ = parse_condense_key(wildcards.ckey)
    resolved = resolve_condense_config(
        config["condense"]["params"], variant=variant, ratio=ratio
    )
    return split_execution_settings(resolved)[0]


def parse_condense_key(ckey):
    """(variant, ratio, replicate) of a condensation folder name."""
    match = re.fullmatch(r"([A-Za-z0-9]+)_r([0-9.]+)_s([0-9]+)", ckey)
    return match.group(1), float(match.group(2)), int(match.group(3))


def dataset_store(dataset):
    """(store, indices) the SR models of `dataset` train on."""
    method = DATASETS[dataset]["method"]
    if method == "folder":
        return {
            "store": f"{RESULTS}/datasets/{DATASETS[dataset]['replicate_of'] or dataset}.h5"
        }
    if method == "idc" or dataset in RELABELLED_DATASETS:
        return {"store": f"{RESULTS}/datasets/{dataset}.h5"}
    if method == "whole":
        return {"store": STORE}
    return {"store": STORE, "indices": f"{RESULTS}/datasets/{dataset}.idx.npy"}


def sr_dir(dataset, model):
    return f"{RESULTS}/sr/{dataset}/{model}"


def get_table_pairs(table):
    spec = config["tables"][table]
    return [(d, m) for d in spec["datasets"] for m in spec["models"]]


def get_table_entries(table):
    """(row, dataset, replicate, model) of every trained model a table reads: a row stands for
    its replicates (`replicates` in the dataset's entry), whose results it averages or pairs.
    """
    return [
        (row, member, DATASETS[member]["replicate"], model)
        for row, model in get_table_pairs(table)
        for member in replicate_members(DATASETS, row)
    ]


# The table keys that only the verdict kind reads; a paper table's params leave them out, so
# adding them to the schema reran no table.
VERDICT_KEYS = ("kind", "compare_to", "whole", "contrasts", "bootstrap", "level")
VERDICT_TABLES = [k for k, t in config["tables"].items() if t["kind"] == "verdict"]
PAPER_TABLES = [k for k in config["tables"] if k not in VERDICT_TABLES]


def get_verdict_spec(wc):
    table = config["tables"][wc.table]
    reference, whole = verdict_methods(wc.table, table, DATASETS)
    return canonical(
        {
            "title": table["title"],
            "methods": table["datasets"],
            "models": table["models"],
            "testsets": table["testsets"],
            "reference": reference,
            "whole": whole,
            "contrasts": table["contrasts"],
            "labels": table["method_labels"],
            "n_boot": table["bootstrap"],
            "level": table["level"],
            "seed": derived_seed(5, wc.table),
        }
    )


def table_outputs(table):
    exts = ("csv", "md") if table in VERDICT_TABLES else ("csv", "md", "tex", "html")
    return [f"{RESULTS}/tables/{table}.{ext}" for ext in exts]


def all_targets():
    targets = []
    for table in config["targets"]:
        targets += table_outputs(table)
    if config["figures"]:
        targets.append(f"{RESULTS}/figures/done.txt")
    targets += [export_dir(d) for d in config["export"]["datasets"]]
    return targets


def mem(mb):
    """A job's memory request, capped by `max_mem_mb` (small clusters, CI nodes)."""
    cap = config["max_mem_mb"]
    return min(mb, cap) if cap else mb


def cpus(n):
    """A job's CPU request, capped by `max_cpus` (small clusters, CI nodes)."""
    cap = config["max_cpus"]
    return min(n, cap) if cap else n


def job_resources(spec):
    """Cluster resources of one job: GPU stages ask for a GPU, CPU stages do not."""
    res = spec["resources"] if "resources" in spec else spec
    return {
        "gpu": res["gpu"],
        "cpus_per_task": cpus(res["cpus"]),
        "mem_mb": mem(res["mem_mb"]),
        "runtime": res["runtime"],
    }


def get_selection_inputs(wc):
    inputs = {"store": STORE}
    if selection_uses_teacher(config, wc.dataset):
        inputs["teacher"] = teacher_path(config["baselines"]["feature_teacher"])
    sized_by = DATASETS[wc.dataset].get("pairs_of")
    if sized_by:
        # The set whose pair count this selection takes, counted by the job once it exists.
        other = dataset_store(sized_by)
        inputs["pairs_of"] = other["store"]
        if "indices" in other:
            inputs["pairs_of_indices"] = other["indices"]
    return inputs


def get_selection_params(wc):
    spec = DATASETS[wc.dataset]
    cfg = {**config["baselines"], **spec["selection"]}  # the dataset's own settings win
    return {
        "method": spec["method"],
        "ratio": spec.get("ratio"),
        "n_splits": cfg["n_splits"],
        **selector_settings(spec["method"], cfg),
    }


def get_relabel_inputs(wc):
    spec = DATASETS[wc.dataset]
    inputs = {"store": STORE, "upsampler": teacher_path(spec["upsampler"])}
    if spec["method"] != "whole":
        inputs["indices"] = f"{RESULTS}/datasets/{wc.dataset}.idx.npy"
    return inputs


def get_sr_train_inputs(wc):
    inputs = dict(dataset_store(wc.dataset))
    if config["data"]["validation"]:
        inputs["val"] = validation_dir()
    return inputs


FIGURE_INSTANCES = (
    3  # instances per IDC dataset drawn in the patch and progress figures
)


def get_figure_inputs(wildcards):
    pairs = sorted({p for t in config["targets"] for p in get_table_pairs(t)})
    idc = sorted({d for d, _ in pairs if d in IDC_DATASETS})
    return {
        "trajectories": [f"{sr_dir(d, m)}/trajectory.csv" for d, m in pairs],
        "stores": [f"{RESULTS}/datasets/{d}.h5" for d in idc],
        "condense_logs": [
            f"{RESULTS}/condense/{condense_key(d)}/{image}.json"
            for d in idc
            for image in condense_images(d)
        ],
        # progress grids: the first instances of each IDC dataset at several steps
        "snapshots": [
            f"{RESULTS}/condense/{condense_key(d)}/{image}.snapshots.npz"
            for d in idc
            for image in condense_images(d)[:FIGURE_INSTANCES]
        ],
        "real_store": STORE,
    }


def _alternatives(names):
    return (
        "|".join(re.escape(str(n)) for n in sorted(names, key=lambda n: -len(str(n))))
        or "__none__"
    )


wildcard_constraints:
    teacher=_alternatives(config["teachers"]),
    model=_alternatives(config["models"]),
    dataset=_alternatives(DATASETS),
    testset=_alternatives(config["data"]["testsets"]),
    table=_alternatives(config["tables"]),
    image=_alternatives(IMAGES),
    ckey="[A-Za-z0-9]+_r[0-9.]+_s[0-9]+",


# ---------------------------------------------------------------- export and import of paired folders
def export_dir(dataset):
    return f"{RESULTS}/export/{dataset}"


def get_export_inputs(wc):
    inputs = {**dataset_store(wc.dataset), "real": STORE}
    if DATASETS[wc.dataset]["method"] == "idc":
        inputs["memorisation"] = f"{RESULTS}/datasets/{wc.dataset}.memorisation.json"
    if DATASETS[wc.dataset]["method"] == "folder":
        inputs.pop("real")  # an imported set names its own images
    return inputs


def get_export_card(wc):
    """What the card says about how the set was made: its config slice and seeds."""
    from idc.data.paired import licence_of

    spec = DATASETS[wc.dataset]
    method, replicate = spec["method"], spec["replicate"]
    made_by = {"dataset": canonical(spec)}
    seeds = {"master": config["seed"], "replicate": replicate}
    if method in SELECTION_METHODS:
        made_by["selection"] = get_selection_params(wc)
        seeds["selection"] = derived_seed(3, replicate, method)
    if method == "idc":
        made_by["condense"] = get_condense_params(
            SimpleNamespace(ckey=condense_key(wc.dataset))
        )
        made_by["extractor"] = get_network_spec(
            "teachers", config["condense"]["extractor"]
        )
        made_by["upsampler"] = get_network_spec("teachers", spec["upsampler"])
        seeds["condense_image"] = {
            s: derived_seed(2, replicate, IMAGE_INDEX[s])
            for s in condense_images(wc.dataset)
        }
        seeds["upsample"] = config["seed"]
    if method != "folder":
        made_by["crop"] = canonical(
            {k: v for k, v in config["data"]["crop"].items() if k != "workers"}
        )
    source = "folder" if method == "folder" else TRAIN["source"]
    content = {
        "whole": "every real patch pair of the training set",
        "idc": (
            f"LR: synthetic patches condensed by IDC (variant {spec.get('variant')}); "
            f"HR: their up-sampling by the teacher {spec.get('upsampler')}"
        ),
        **(
            {
                method: f"LR: real patches ({method}); HR: the teacher {spec['upsampler']}'s "
                "up-sampling of them (relabelling control)"
            }
            if wc.dataset in RELABELLED_DATASETS
            else {}
        ),
        "folder": "patch pairs imported from paired folders",
    }.get(method, f"real patch pairs selected by {method}")
    # Key order is the card's reading order (fixed here, so the params text is stable).
    return {
        "name": wc.dataset,
        "run": config["run"],
        "method": method,
        "ratio": spec.get("ratio"),
        "content": content,
        "source": {
            "kind": source,
            "where": spec["hr"] if method == "folder" else train_hr_dir(),
            "licence": config["export"]["licence"] or licence_of(source),
        },
        "config": canonical(made_by),
        "seeds": seeds,
    }


def _visible_files(folder):
    """Every visible file of a folder, in name order (hidden ones are never read)."""
    return sorted(
        str(p)
        for p in Path(folder).iterdir()
        if p.is_file() and not p.name.startswith(".")
    )


def get_folder_inputs(wc):
    """The folders of a `method: folder` dataset and every file in them: rewriting an image
    changes its own mtime, not its folder's, so only the files make the import rerun."""
    spec = DATASETS[wc.dataset]
    inputs = {"hr": spec["hr"], "hr_files": _visible_files(spec["hr"])}
    for key in ("lr", "meta_info"):
        if spec.get(key):
            inputs[key] = spec[key]
    if spec.get("lr"):
        inputs["lr_files"] = _visible_files(spec["lr"])
    return inputs


def get_folder_crop(wc):
    spec, crop = DATASETS[wc.dataset], config["data"]["crop"]
    return {
        "hr_size": spec.get("hr_size") or crop["hr_size"],
        "step": spec.get("step") or crop["step"],
    }


for _name in FOLDER_DATASETS:
    # A missing folder is a config error, reported before any job is planned.
    _checked_folder(f"datasets.{_name}.hr", DATASETS[_name]["hr"])
    if DATASETS[_name].get("lr"):
        _checked_folder(f"datasets.{_name}.lr", DATASETS[_name]["lr"])
    if (
        DATASETS[_name].get("meta_info")
        and not Path(DATASETS[_name]["meta_info"]).is_file()
    ):
        sys.exit(
            f"error: config key datasets.{_name}.meta_info: file {DATASETS[_name]['meta_info']} does not exist"
        )
