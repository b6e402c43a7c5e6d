"""Saving and loading SR networks without executing pickled code.

`save_model` writes a safetensors file whose metadata names the architecture and its constructor
arguments (JSON), so `load_model` can rebuild the network from the file alone, and holds the SHA-256
of its tensors (`tensors_digest`), which `load_model` compares (files written before that carry
none and are loaded unverified). `load_model` also refuses non-finite weights.
`load_official_weights` reads released checkpoints (BasicSR-style dicts with `params` /
`params_ema`, or plain state dicts) from safetensors or with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from idc.archs.registry import ARCHITECTURES, build_model
from idc.atomic import atomic_path

logger = logging.getLogger(__name__)

FORMAT_TAG = "idc-archs-model/1"

# Buffers the networks recompute from their configuration; checkpoints may or may not hold them.
DERIVABLE_BUFFER_SUFFIXES = ("attn_mask",)


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    return value


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of named tensors (name, dtype, shape and raw bytes, in name order): the checksum a
    model file carries in its metadata, so a flipped byte in its weights is found on load."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        values = tensors[name].detach().cpu().contiguous()
        digest.update(repr((name, str(values.dtype), tuple(values.shape))).encode())
        # As raw bytes (numpy has no bfloat16); reshaped first, since a 0-d tensor has no view.
        digest.update(values.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _check_weights(path: Path, state: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> None:
    """ValueError naming the file when a weight is NaN or infinite, or the tensors differ from the
    checksum written at save (absent in files of earlier versions: then not checked)."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"model file {path}: tensor {name!r} holds non-finite values (NaN or inf); "
                             "the file is corrupt or the training diverged")
    expected = meta.get("sha256")
    if expected is None:
        logger.debug("model file %s carries no checksum (written before checksums existed): not verified", path)
        return
    if tensors_digest(state) != expected:
        raise ValueError(f"model file {path}: its weights do not match the checksum written at save "
                         "(corrupt file: recreate it)")


def save_model(path: str | os.PathLike, model: nn.Module, name: str, kwargs: Mapping[str, Any],
               extra_metadata: Mapping[str, str] | None = None) -> Path:
    """Write `model`'s state dict to `path` (safetensors) with `name` + `kwargs` in the metadata.

    `name` is an architecture name (e.g. "edsr"); `kwargs` the constructor arguments such that
    `build_model(name, **kwargs)` rebuilds the same structure. The file appears atomically.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"save_model: {name!r} is not an architecture name ({', '.join(ARCHITECTURES)})")
    path = Path(path)
    try:
        kwargs_json = json.dumps(_to_jsonable(dict(kwargs)), sort_keys=True)
    except TypeError as err:
        raise ValueError(f"save_model: constructor kwargs must be JSON values (numbers, strings, lists): {err}") from err
    # safetensors refuses shared or non-contiguous storage: store independent contiguous copies.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT_TAG, "arch": name, "kwargs": kwargs_json, "torch": torch.__version__,
                "sha256": tensors_digest(tensors)}
    if extra_metadata:
        clash = set(extra_metadata) & set(metadata)
        if clash:
            raise ValueError(f"save_model: extra_metadata may not override {sorted(clash)}")
        metadata.update({str(k): str(v) for k, v in extra_metadata.items()})
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
    logger.info("saved %s (%s, %d tensors) to %s", name, FORMAT_TAG, len(tensors), path)
    return path


def read_model_metadata(path: str | os.PathLike) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(architecture, constructor kwargs, raw metadata) of a file written by `save_model`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for damaged headers
        raise ValueError(f"model file {path} is not a readable safetensors file (corrupt or truncated?): {err}") from err
    if meta.get("format") != FORMAT_TAG or "arch" not in meta or "kwargs" not in meta:
        raise ValueError(f"model file {path} has no idc model metadata (format/arch/kwargs); "
                         "use load_official_weights for plain checkpoints")
    try:
        kwargs = json.loads(meta["kwargs"])
    except json.JSONDecodeError as err:
        raise ValueError(f"model file {path}: constructor kwargs in the metadata are not valid JSON: {err}") from err
    return meta["arch"], kwargs, meta


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network saved by `save_model` and load its weights strictly (eval mode), after
    checking them finite and, where the file carries one, against its checksum."""
    path = Path(path)
    arch, kwargs, meta = read_model_metadata(path)
    try:
        model = build_model(arch, **kwargs)  # checked first: metadata may ask for any size
    except ValueError as err:
        raise ValueError(f"model file {path}: {err}") from None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:
        raise ValueError(f"model file {path} could not be read (corrupt or truncated?): {err}") from err
    _check_weights(path, state, meta)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"model file {path} does not match {arch}({kwargs}): {err}") from err
    model.to(map_location)
    model.eval()
    return model


def _read_checkpoint(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes; an interrupted download?)")
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                return {k: f.get_tensor(k) for k in f.keys()}
        except Exception as err:
            raise ValueError(f"checkpoint {path} is not a readable safetensors file: {err}") from err
    try:
        # weights_only: tensors and plain containers only, never arbitrary pickled objects.
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        reason = str(err).strip() or type(err).__name__
        raise ValueError(f"checkpoint {path} could not be loaded with weights_only=True: {reason}") from err


def extract_state_dict(checkpoint: Mapping[str, Any], param_key: str | None = None) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint dict.

    With `param_key=None`: `params_ema` if present (the averaged weights BasicSR evaluates),
    else `params`, else `state_dict`, else the mapping itself. A `module.` prefix is removed.
    """
    if param_key is not None:
        if param_key not in checkpoint:
            raise ValueError(f"checkpoint has no key {param_key!r} (keys: {sorted(checkpoint)[:8]})")
        state = checkpoint[param_key]
    else:
        for key in ("params_ema", "params", "state_dict"):
            if key in checkpoint and isinstance(checkpoint[key], Mapping):
                state = checkpoint[key]
                break
        else:
            state = checkpoint
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"checkpoint entry {k!r} is a {type(v).__name__}, not a tensor")
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def load_official_weights(model: nn.Module, path_or_dict: str | os.PathLike | Mapping[str, Any],
                          param_key: str | None = None) -> nn.Module:
    """Load a released checkpoint (or fixture) into `model` strictly, in place; returns `model`.

    Buffers that the network derives from its configuration (SwinIR's `attn_mask`) are ignored
    whether present or not; every other key must match in name and shape.
    """
    source = "state dict"
    if isinstance(path_or_dict, Mapping):
        checkpoint = path_or_dict
    else:
        source = str(path_or_dict)
        checkpoint = _read_checkpoint(Path(path_or_dict))
    state = extract_state_dict(checkpoint, param_key)
    state = {k: v for k, v in state.items() if not k.endswith(DERIVABLE_BUFFER_SUFFIXES)}
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(DERIVABLE_BUFFER_SUFFIXES)]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
             if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(f"weights from {source} do not fit {type(model).__name__}: "
                         f"missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} "
                         f"({len(unexpected)}), shape mismatch {wrong[:5]}")
    model.load_state_dict(state, strict=False)
    return model


def import_official_weights(src: str | os.PathLike, dst: str | os.PathLike, model: str,
                            param_key: str | None = None, **overrides: Any) -> Path:
    """Convert a released checkpoint into this package's format: build `model` (architecture or
    preset name, `overrides` applied), load `src` strictly, write `dst` with `save_model`."""
    from idc.archs.registry import resolve

    arch, kwargs = resolve(model, **overrides)
    network = build_model(arch, **kwargs)
    load_official_weights(network, src, param_key=param_key)
    return save_model(dst, network, arch, kwargs, extra_metadata={"imported_from": Path(src).name})
