"""The run's images: the training images, read while the workflow is parsed (their names define
the condensation jobs, their patch counts the budget shares and the ratio checks), and the
benchmark test sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idc.config import ConfigError
from idc.workflow.paths import RunPaths

DIV2K_TRAIN_IMAGES = 800


def checked_folder(key: str, path: str | Path) -> Path:
    """`path` as a Path; ConfigError naming `key` when it is not a folder."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"config key {key}: folder {path} does not exist")
    return path


def train_hr_dir(config: dict[str, Any], paths: RunPaths) -> str:
    """The training images' HR folder: the DIV2K download or local copy, the demo photos, or the
    configured folder (which must exist)."""
    train = config["data"]["trainset"]
    if train["source"] == "div2k":
        return train["div2k_local_dir"] or f"{paths.results}/data/DIV2K_train_HR"
    if train["source"] == "demo":
        return f"{paths.results}/data/demo/train/HR"
    return str(checked_folder("data.trainset.folder", train["folder"]))


def train_lr_dir(config: dict[str, Any], paths: RunPaths) -> str | None:
    """The provided LR folder (official DIV2K X4), or None when LR comes from our imresize."""
    train = config["data"]["trainset"]
    if train["source"] == "div2k" and train["div2k_official_lr"] and not train["div2k_local_dir"]:
        return f"{paths.results}/data/DIV2K_train_LR_bicubic/X{config['scale']}"
    return None


def div2k_folders(config: dict[str, Any], paths: RunPaths) -> dict[str, str]:
    """The folders the DIV2K download writes: HR, and the official LR when it is used."""
    folders = {"hr": f"{paths.results}/data/DIV2K_train_HR"}
    lr = train_lr_dir(config, paths)
    if lr:
        folders["lr"] = lr
    return folders


@dataclass(frozen=True)
class TrainingImages:
    """What the workflow knows of the training images while it is parsed."""

    hr_dir: str
    lr_dir: str | None
    stems: list[str]  # image names, in the order that defines image ids
    # Patches per image when they can be known before cropping (images on disk), else None.
    patch_counts: list[int] | None
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {stem: i for i, stem in enumerate(self.stems)})


def _on_disk_key(train: dict[str, Any]) -> str | None:
    """The config key of the training images' folder when they are on disk before any job runs
    (a folder or a local DIV2K copy), else None (demo photos, DIV2K download)."""
    if train["source"] == "folder":
        return "data.trainset.folder"
    if train["source"] == "div2k" and train["div2k_local_dir"]:
        return "data.trainset.div2k_local_dir"
    return None


def read_training_images(config: dict[str, Any], paths: RunPaths) -> TrainingImages:
    """The training images of a validated config: folder, names and (images on disk) patch counts
    from the headers. ConfigError naming the key for a missing folder, an unreadable image, a name
    that cannot be a path component or an empty set."""
    from idc.data.images import list_images

    train = config["data"]["trainset"]
    hr_dir = train_hr_dir(config, paths)
    files = None
    if train["source"] == "div2k":
        stems = [f"{i:04d}" for i in range(1, DIV2K_TRAIN_IMAGES + 1)][: train["images"]]
    elif train["source"] == "demo":
        from idc.data.demo import DEMO_TRAIN

        stems = sorted(DEMO_TRAIN)
    else:
        from idc.names import check_name

        # The listing (and order) that gives the patch store its image ids; a stem names the
        # image's condensation log, so it follows the rule of path components.
        try:
            files = list_images(hr_dir)[: train["images"]]
            stems = [check_name(p.stem, f"training image {p}") for p in files]
        except (OSError, ValueError) as err:
            raise ConfigError(f"config key data.trainset.folder: {err}") from None
        if not stems:
            raise ConfigError(f"config key data.trainset.folder: no images in {hr_dir}")
    return TrainingImages(hr_dir, train_lr_dir(config, paths), stems, _patch_counts(config, hr_dir, files))


def _patch_counts(config: dict[str, Any], hr_dir: str, files: list[Path] | None) -> list[int] | None:
    """Patches per training image (headers only) when the images are on disk, else None."""
    from idc.data.crop import image_patch_counts
    from idc.data.images import list_images

    train, crop = config["data"]["trainset"], config["data"]["crop"]
    key = _on_disk_key(train)
    if key is None:
        return None
    try:
        files = list_images(hr_dir)[: train["images"]] if files is None else files
        return image_patch_counts(files, scale=config["scale"], hr_size=crop["hr_size"], step=crop["step"],
                                  thresh=crop["thresh"])
    except (OSError, ValueError) as err:
        raise ConfigError(f"config key {key}: {err}") from None


def testset_sources(config: dict[str, Any], paths: RunPaths, name: str) -> dict[str, str | None]:
    """The HR folder of a test set and its LR folder (None when absent: our imresize makes it)."""
    spec = config["data"]["testsets"][name]
    if spec["source"] == "demo":
        return {"hr": f"{paths.results}/data/demo/test/HR", "lr": None}
    root = Path(config["data"]["benchmark_root"])
    hr = Path(spec["hr"]) if Path(spec["hr"]).is_absolute() else root / spec["hr"]
    lr = None
    if spec["lr"]:
        lr = Path(spec["lr"]) if Path(spec["lr"]).is_absolute() else root / spec["lr"]
        lr = str(lr) if lr.is_dir() else None
    return {"hr": str(hr), "lr": lr}


def testsets_in_use(config: dict[str, Any]) -> list[str]:
    """The test sets the target tables read and the validation set, each once, in that order."""
    names = []
    for target in config["targets"]:
        for name in config["tables"][target]["testsets"]:
            if name not in names:
                names.append(name)
    if config["data"]["validation"] and config["data"]["validation"] not in names:
        names.append(config["data"]["validation"])
    return names
