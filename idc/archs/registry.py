"""Factory for the SR networks: `build_model(name, **kwargs)` and the named presets of the papers."""

from __future__ import annotations

import copy
import importlib
import inspect
import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn


def _edsr(**kwargs: Any) -> nn.Module:
    from idc.archs.edsr import EDSR

    return EDSR(**kwargs)


def _swinir(**kwargs: Any) -> nn.Module:
    from idc.archs.swinir import SwinIR

    return SwinIR(**kwargs)


def _mambairv2_light(**kwargs: Any) -> nn.Module:
    from idc.archs.mambairv2 import MambaIRv2Light

    return MambaIRv2Light(**kwargs)


def _mambairv2(**kwargs: Any) -> nn.Module:
    from idc.archs.mambairv2 import MambaIRv2

    return MambaIRv2(**kwargs)


# Architecture name -> constructor (keyword arguments named as in the official code).
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "edsr": _edsr,
    "swinir": _swinir,
    "mambairv2_light": _mambairv2_light,
    "mambairv2": _mambairv2,
}

# Named configurations: {"arch": architecture name, "kwargs": constructor arguments}.
# Values follow the official option files (BasicSR EDSR_Mx4/EDSR_Lx4, SwinIR lightweight/classic
# x4, MambaIRv2 lightSR/SR x4); parameter counts at x4 are in the comments.
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    # 1,517,571 parameters
    "edsr_baseline_x4": {
        "arch": "edsr",
        "kwargs": dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4, res_scale=1.0,
                       img_range=255.0, rgb_mean=[0.4488, 0.4371, 0.4040]),
    },
    # 43,089,923 parameters
    "edsr_x4": {
        "arch": "edsr",
        "kwargs": dict(num_in_ch=3, num_out_ch=3, num_feat=256, num_block=32, upscale=4, res_scale=0.1,
                       img_range=255.0, rgb_mean=[0.4488, 0.4371, 0.4040]),
    },
    # 929,628 parameters (897,228 without the relative-position-bias tables)
    "swinir_light_x4": {
        "arch": "swinir",
        "kwargs": dict(upscale=4, in_chans=3, img_size=64, window_size=8, img_range=1.0, depths=[6, 6, 6, 6],
                       embed_dim=60, num_heads=[6, 6, 6, 6], mlp_ratio=2.0, upsampler="pixelshuffledirect",
                       resi_connection="1conv"),
    },
    # classical SR x4 (DIV2K-trained, patch 48): 11.9M parameters
    "swinir_classic_x4": {
        "arch": "swinir",
        "kwargs": dict(upscale=4, in_chans=3, img_size=48, window_size=8, img_range=1.0,
                       depths=[6, 6, 6, 6, 6, 6], embed_dim=180, num_heads=[6, 6, 6, 6, 6, 6], mlp_ratio=2.0,
                       upsampler="pixelshuffle", resi_connection="1conv"),
    },
    # 789,680 parameters
    "mambairv2_light_x4": {
        "arch": "mambairv2_light",
        "kwargs": dict(upscale=4, in_chans=3, img_size=64, img_range=1.0, embed_dim=48, d_state=8,
                       depths=[5, 5, 5, 5], num_heads=[4, 4, 4, 4], window_size=16, inner_rank=32,
                       num_tokens=64, convffn_kernel_size=5, mlp_ratio=1.0, upsampler="pixelshuffledirect",
                       resi_connection="1conv"),
    },
    # 23,050,713 parameters
    "mambairv2_x4": {
        "arch": "mambairv2",
        "kwargs": dict(upscale=4, in_chans=3, img_size=64, img_range=1.0, embed_dim=174, d_state=16,
                       depths=[6, 6, 6, 6, 6, 6], num_heads=[6, 6, 6, 6, 6, 6], window_size=16, inner_rank=64,
                       num_tokens=128, convffn_kernel_size=5, mlp_ratio=2.0, upsampler="pixelshuffle",
                       resi_connection="1conv"),
    },
}


def resolve(name: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """(architecture, full kwargs) for an architecture or preset name, with `kwargs` overriding."""
    if name in MODEL_PRESETS:
        preset = MODEL_PRESETS[name]
        merged = copy.deepcopy(preset["kwargs"])
        merged.update(kwargs)
        return preset["arch"], merged
    if name in ARCHITECTURES:
        return name, dict(kwargs)
    known = sorted(ARCHITECTURES) + sorted(MODEL_PRESETS)
    raise ValueError(f"unknown model {name!r}; known architectures and presets: {', '.join(known)}")


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Construct an SR network by architecture name (`edsr`, `swinir`, `mambairv2_light`, `mambairv2`)
    or preset name (see `MODEL_PRESETS`; `kwargs` then override the preset's values).

    Unknown or mistyped keyword arguments, and networks beyond ``MAX_MODEL_ELEMENTS`` weights,
    raise ModelArgumentError (a TypeError and a ValueError) naming the argument, before any weight
    is allocated.
    """
    arch, full = check_model_kwargs(name, kwargs)
    return ARCHITECTURES[arch](**full)


class ModelArgumentError(TypeError, ValueError):
    """Constructor arguments that do not fit the architecture (TypeError for callers that catch
    what the constructor itself would raise; ValueError for the one-line error of the commands)."""


# Largest network a configuration or a model file may ask for (parameters + buffers). The paper's
# largest (EDSR, 43M) is far below; a typo such as num_feat=640000 would otherwise try to allocate
# terabytes before failing.
MAX_MODEL_ELEMENTS = 2_000_000_000


# Where each architecture's class lives (its signature is read without building it).
_CLASSES = {"edsr": ("idc.archs.edsr", "EDSR"), "swinir": ("idc.archs.swinir", "SwinIR"),
            "mambairv2_light": ("idc.archs.mambairv2", "MambaIRv2Light"),
            "mambairv2": ("idc.archs.mambairv2", "MambaIRv2")}


def _constructor_parameters(arch: str) -> Mapping[str, inspect.Parameter]:
    module, cls = _CLASSES[arch]
    return inspect.signature(getattr(importlib.import_module(module), cls).__init__).parameters


def _accepts(annotation: str, value: Any) -> bool:
    """Whether a JSON-like `value` fits a constructor annotation (written as text: the modules use
    postponed annotations). Unknown annotations (e.g. a layer class) accept nothing from a config."""
    def scalar(kind: str, v: Any) -> bool:
        if kind == "None":
            return v is None
        if kind == "bool":
            return isinstance(v, bool)
        if kind == "int":
            return isinstance(v, int) and not isinstance(v, bool)
        if kind == "float":
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if kind == "str":
            return isinstance(v, str)
        if kind.startswith("Sequence[") and kind.endswith("]"):
            return isinstance(v, (list, tuple)) and all(scalar(kind[9:-1], x) for x in v)
        return False

    return any(scalar(part.strip(), value) for part in annotation.split("|"))


def check_model_kwargs(name: str, kwargs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(architecture, full kwargs) after checking every argument's name and type against the
    constructor and the network's size, without allocating it (built on the meta device).

    ModelArgumentError naming the argument; called before any job or weight allocation.
    """
    import torch

    arch, full = resolve(name, **dict(kwargs))
    params = _constructor_parameters(arch)
    for key, value in full.items():
        if key not in params or key == "self":
            known = ", ".join(p for p in params if p != "self")
            raise ModelArgumentError(f"{arch} has no constructor argument {key!r} (known: {known})")
        annotation = params[key].annotation
        if not isinstance(annotation, str) or not _accepts(annotation, value):
            raise ModelArgumentError(f"{arch} argument {key}={value!r} is not of type {annotation}")
    try:
        with torch.device("meta"):
            network = ARCHITECTURES[arch](**full)
    except (TypeError, ValueError, RuntimeError, AssertionError, ZeroDivisionError, IndexError) as err:
        raise ModelArgumentError(f"{arch}({', '.join(f'{k}={v!r}' for k, v in full.items())}) cannot be built: {err}") from None
    size = sum(t.numel() for t in itertools.chain(network.parameters(), network.buffers()))
    if size > MAX_MODEL_ELEMENTS:
        raise ModelArgumentError(f"{arch} with these arguments has {size:,} weights, more than the limit "
                         f"{MAX_MODEL_ELEMENTS:,} (a typo in a width or depth?)")
    return arch, full


def default_kwarg(name: str, key: str) -> Any:
    """The constructor's default of argument `key` of architecture or preset `name` (e.g. upscale)."""
    arch, full = resolve(name)
    if key in full:
        return full[key]
    return _constructor_parameters(arch)[key].default
