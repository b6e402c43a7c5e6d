"""Every load verifies what it reads (issue 23, classes 4 and 6): condensation outputs before
assembly, condensation checkpoints on resume, model files on load. Each bad file stops with one
line naming it, before any work uses it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from idc.condense.stage import upsample_and_assemble
from idc.data.store import write_patch_store
from tests.workflow_helpers import one_error_line, run_idc


# ---------------------------------------------------------------- condensation outputs (class 6)
@pytest.fixture
def synthetic_inputs(tmp_path):
    """A real store of two images (3 LR patches of 8x8 each), two good synthetic files with their
    logs (2 patches each), and a stand-in up-sampler file (the checks come before it is read)."""
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    hr = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    real = write_patch_store(tmp_path / "real.h5", lr, hr, np.repeat([0, 1], 3), np.zeros((6, 2), np.int64),
                             step=8, source="test", seed=None)
    paths = []
    for image_id in (0, 1):
        path = tmp_path / f"{image_id}.npy"
        np.save(path, rng.uniform(0, 1, (2, 3, 8, 8)).astype(np.float32))
        path.with_suffix(".json").write_text(json.dumps({"image_id": image_id, "n_synthetic": 2}))
        paths.append(path)
    upsampler = tmp_path / "teacher.safetensors"
    upsampler.write_bytes(b"not read before the checks")
    return real, paths, upsampler


def _assemble(paths, upsampler, out, **kw):
    return upsample_and_assemble(synthetic_paths=paths, image_ids=[0, 1], upsampler_path=upsampler, out_store=out,
                                 source="t", seed=0, device="cpu", **kw)


def _replace(path, array):
    np.save(path, np.asarray(array, dtype=np.float32))


@pytest.mark.parametrize("case, message", [
    ("nan", "1 non-finite values"),
    ("above one", r"outside \[0, 1\]"),
    ("below zero", r"outside \[0, 1\]"),
    ("not square", "must be square"),
    ("other size", "are 4x4, not 8x8"),
    ("more than allotted", "hold 3 patches, but image 1 was allotted 2"),
    ("log of another image", "is for image 0, not image 1"),
])
def test_bad_condensation_output_is_refused_before_assembly(synthetic_inputs, tmp_path, case, message):
    """A NaN .npy once became black LR patches; values outside [0, 1], patches of the wrong size
    and too many patches for an image were assembled too."""
    real, paths, upsampler = synthetic_inputs
    good = np.load(paths[1])
    bad = {"nan": np.where(np.arange(good.size).reshape(good.shape) == 5, np.nan, good),
           "above one": good + 1.0, "below zero": good - 1.0, "not square": good[:, :, :, :4],
           "other size": good[:, :, :4, :4], "more than allotted": np.concatenate([good, good[:1]]),
           "log of another image": good}[case]
    _replace(paths[1], bad)
    if case == "log of another image":
        paths[1].with_suffix(".json").write_text(json.dumps({"image_id": 0, "n_synthetic": 2}))
    with pytest.raises(ValueError, match=message) as err:
        _assemble(paths, upsampler, tmp_path / "idc.h5")
    assert str(paths[1]) in str(err.value) and not (tmp_path / "idc.h5").exists()


def test_condensation_output_checked_against_the_real_store(synthetic_inputs, tmp_path):
    """Without logs, the real store still fixes the patch size and bounds each image's count:
    500 patches for a 3-patch image are refused, by the command too, in one line."""
    real, paths, upsampler = synthetic_inputs
    for path in paths:
        path.with_suffix(".json").unlink()
    _replace(paths[0], np.full((2, 3, 4, 4), 0.5))
    _replace(paths[1], np.full((2, 3, 4, 4), 0.5))
    with pytest.raises(ValueError, match=f"{paths[0]} are 4x4, not 8x8 .*LR patch size of"):
        _assemble(paths, upsampler, tmp_path / "idc.h5", real_store=real)
    _replace(paths[0], np.full((500, 3, 8, 8), 0.5))
    _replace(paths[1], np.full((2, 3, 8, 8), 0.5))
    proc = run_idc("upsample-assemble", "--synthetic", *map(str, paths), "--image-ids", "0", "1",
                "--upsampler", str(upsampler), "--out", str(tmp_path / "idc.h5"), "--real-store", str(real))
    one_error_line(proc, str(paths[0]), "500 patches, more than the 3 real patches of image 0")
    assert not (tmp_path / "idc.h5").exists()


# ---------------------------------------------------------------- condensation checkpoints (class 4)
def _interrupted_checkpoint(tmp_path):
    import os
    import signal

    from idc.condense.condenser import CondensationInterrupted, condense_instance
    from tests.doubles import TinyExtractor
    from tests.test_condense_condenser import real_patches, tiny_cfg

    ckpt = tmp_path / "c.ckpt"

    def stop(record):
        if record["step"] == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    def run(**kw):
        return condense_instance(real_patches(), TinyExtractor(channels=4), tiny_cfg(), seed=0, resume_path=ckpt, **kw)

    with pytest.raises(CondensationInterrupted):
        run(on_log=stop)
    return ckpt, run


def test_altered_condensation_checkpoint_is_refused_not_resumed(tmp_path):
    """One changed value in `syn_param` was once resumed with rc 0: the checksum written at save
    now finds it."""
    import torch

    ckpt, run = _interrupted_checkpoint(tmp_path)
    state = torch.load(ckpt, weights_only=True)
    state["instances"][0]["syn_param"].view(-1)[3] += 0.5
    torch.save(state, ckpt)  # the old checksum stays: as if a byte of the tensor had flipped
    with pytest.raises(ValueError, match=f"condensation checkpoint {ckpt} does not match the checksum"):
        run()


@pytest.mark.parametrize("case, message", [("nan", "syn_param holds non-finite values"),
                                           ("shape", r"syn_param is \(1, 3, 8, 8\), expected \(2, 3, 8, 8\)")])
def test_condensation_checkpoint_tensors_are_checked_finite_and_shaped(tmp_path, case, message):
    """Even with a matching checksum: a wrong shape would broadcast silently, NaN be optimised on."""
    import torch

    from idc.condense.checkpoint import save_checkpoint

    ckpt, run = _interrupted_checkpoint(tmp_path)
    state = torch.load(ckpt, weights_only=True)
    del state["sha256"]
    syn = state["instances"][0]["syn_param"]
    state["instances"][0]["syn_param"] = syn.clone().fill_(float("nan")) if case == "nan" else syn[:1].clone()
    save_checkpoint(ckpt, state)
    with pytest.raises(ValueError, match=message):
        run()


def test_condensation_checkpoint_without_checksum_is_still_resumed(tmp_path, caplog):
    """Checkpoints of earlier versions carry no checksum: loaded unverified, said in a debug line."""
    import torch

    ckpt, run = _interrupted_checkpoint(tmp_path)
    state = torch.load(ckpt, weights_only=True)
    del state["sha256"]
    torch.save(state, ckpt)
    with caplog.at_level("DEBUG", logger="idc.condense.checkpoint"):
        _, log = run()
    assert log["resumed_from_step"] is not None and "carries no checksum" in caplog.text


# ---------------------------------------------------------------- model files (class 4, class 12)
@pytest.fixture
def model_file(tmp_path):
    import torch

    from idc.archs import build_model, save_model

    torch.manual_seed(0)
    kwargs = dict(num_feat=4, num_block=1, upscale=4)
    return save_model(tmp_path / "m.safetensors", build_model("edsr", **kwargs), "edsr", kwargs)


def _rewrite_weights(path, change, *, drop_checksum=False):
    """Rewrite a model file with one tensor changed, keeping its metadata (and so its checksum)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    change(tensors)
    if drop_checksum:
        meta.pop("sha256")
    save_file(tensors, str(path), metadata=meta)


@pytest.mark.parametrize("case", ["flipped exponent", "zeroed"])
def test_altered_model_file_is_refused(model_file, case):
    """A flipped exponent or a zeroed `conv_first.weight` once gave another PSNR with rc 0."""
    import torch

    from idc.archs import load_model

    def change(tensors):
        weight = tensors["conv_first.weight"]
        if case == "zeroed":
            weight.zero_()
        else:
            bits = weight.view(-1)[:1].view(torch.int32)
            bits ^= 1 << 27  # an exponent bit: still a finite number, another one
    _rewrite_weights(model_file, change)
    with pytest.raises(ValueError, match=f"model file {model_file}: its weights do not match the checksum"):
        load_model(model_file)


def test_model_file_with_nan_weight_is_one_line_in_sr_test(model_file, tmp_path):
    """`sr test` on a NaN weight once ended in a FloatingPointError traceback."""
    from PIL import Image

    def change(tensors):
        tensors["conv_first.weight"].view(-1)[0] = float("nan")
    _rewrite_weights(model_file, change, drop_checksum=True)  # the finite check alone finds it
    for folder, size, name in (("HR", 32, "a.png"), ("LR", 8, "ax4.png")):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((size, size, 3), 128, np.uint8)).save(tmp_path / folder / name)
    proc = run_idc("sr", "test", "--set", f"model_path={model_file}", "--set",
                f"testsets={{t: [{tmp_path / 'HR'}, {tmp_path / 'LR'}]}}", "--set", f"out_csv={tmp_path / 'o.csv'}",
                "--set", "device=cpu")
    one_error_line(proc, str(model_file), "'conv_first.weight' holds non-finite values")
    assert not (tmp_path / "o.csv").exists()


def test_model_file_without_checksum_still_loads(model_file, caplog):
    from idc.archs import load_model

    _rewrite_weights(model_file, lambda tensors: None, drop_checksum=True)
    with caplog.at_level("DEBUG", logger="idc.archs.io"):
        load_model(model_file)
    assert "carries no checksum" in caplog.text


# ---------------------------------------------------------------- patch stores (class 4)
@pytest.fixture
def corrupt_store(tmp_path):
    """A patch store with one HR chunk overwritten after creation (same size, still decodes:
    LZF reads zeros as valid data), and a selection of it."""
    import h5py

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    lr = hr[:, ::4, ::4]
    store = write_patch_store(tmp_path / "s.h5", lr, hr, np.arange(6), np.zeros((6, 2), np.int64), source="t")
    with h5py.File(store) as f:
        info = f["hr"].id.get_chunk_info(2)
    with open(store, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\0" * info.size)
    np.save(tmp_path / "sel.npy", np.array([0, 2, 4]))
    return store, tmp_path / "sel.npy"


def test_training_refuses_a_store_altered_after_creation(corrupt_store, tmp_path):
    import yaml

    store, _ = corrupt_store
    config = dict(model_name="edsr", model_kwargs=dict(num_feat=8, num_block=1), store_path=str(store),
                  steps=2, batch_size=2, gt_size=16, lr=1e-3, milestones=[1], checkpoint_every=1,
                  val_every=1000, seed=3, out_dir=str(tmp_path / "out"))
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    one_error_line(run_idc("sr", "train", str(path)), str(store), "'hr' does not match the checksum")
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_export_and_selection_refuse_a_store_altered_after_creation(corrupt_store, tmp_path):
    store, selection = corrupt_store
    one_error_line(run_idc("export", str(store), str(tmp_path / "ex"), "--indices", str(selection)), str(store),
              "does not match the checksum")
    assert not (tmp_path / "ex").exists()
    one_error_line(run_idc("select", "--store", str(store), "--method", "random", "--ratio", "0.5", "--out",
                   str(tmp_path / "sel_out.npy"), "--seed", "0", "--n-splits", "1"), str(store), "does not match the checksum")
