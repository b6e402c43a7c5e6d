"""SR training: interrupted + resumed runs equal uninterrupted ones, checkpoint integrity, guards."""

from __future__ import annotations

import json
import signal

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from idc.data.images import write_png
from idc.data.imresize import imresize_uint8
from idc.data.store import write_patch_store
from idc.sr.checkpoint import CorruptCheckpointError, read_manifest
from idc.sr.cli import train_arguments
from idc.sr.train import NonFiniteLossError, TrainingInterrupted, default_resume_dir, train_sr

TINY_EDSR = dict(num_feat=8, num_block=1, upscale=4)
# drop_path makes the training forward consume the global torch RNG, which a resume must restore.
TINY_SWINIR = dict(upscale=4, img_size=8, window_size=4, depths=[2], embed_dim=8, num_heads=[2], mlp_ratio=1.0,
                   upsampler="pixelshuffledirect", drop_path_rate=0.5)
# Official Gumbel routing draws from the global torch RNG in every forward.
TINY_MAMBAIRV2 = dict(upscale=4, img_size=8, embed_dim=8, d_state=2, depths=[1], num_heads=[1], window_size=4,
                      inner_rank=4, num_tokens=4, mlp_ratio=1.0, upsampler="pixelshuffledirect")


def _smooth_images(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Random low-frequency colour images (something an SR net can learn a little of)."""
    coarse = rng.uniform(0, 255, (n, size // 8, size // 8, 3))
    big = np.stack([imresize_uint8(np.round(c).astype(np.uint8), 8) for c in coarse])
    return np.clip(big.astype(np.int16) + rng.integers(-8, 9, big.shape), 0, 255).astype(np.uint8)


def write_train_data(root, *, n: int, seed: int) -> dict:
    """A patch store of ``n`` 32x32 HR patches and two validation images under ``root``."""
    rng = np.random.default_rng(seed)
    hr = _smooth_images(rng, n, 32)
    lr = np.stack([imresize_uint8(h, 0.25) for h in hr])
    store = write_patch_store(root / "store.h5", lr, hr, np.arange(n), np.zeros((n, 2), np.int64), source="test")
    val_hr, val_lr = root / "val_hr", root / "val_lr"
    for i, img in enumerate(_smooth_images(rng, 2, 24)):
        write_png(val_hr / f"v{i}.png", img)
        write_png(val_lr / f"v{i}x4.png", imresize_uint8(img, 0.25))
    return {"store": store, "val_hr": val_hr, "val_lr": val_lr}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_train_data(tmp_path_factory.mktemp("train_data"), n=8, seed=0)


def _settings(data, out_dir, **over):
    settings = dict(
        model_name="edsr", model_kwargs=TINY_EDSR, store_path=data["store"], out_dir=out_dir, steps=6,
        batch_size=3, gt_size=16, lr=1e-3, milestones=[2, 5], gamma=0.5, val_every=2, checkpoint_every=4,
        val_hr_dir=data["val_hr"], val_lr_dir=data["val_lr"], crop_border=2, seed=7, log_every=1,
    )
    settings.update(over)
    return settings


def _train(settings):
    """train_sr on a flat mapping of TrainConfig fields and its keyword arguments (the file format
    of `python -m idc sr train`), plus an optional step_callback."""
    settings = dict(settings)
    step_callback = settings.pop("step_callback", None)
    cfg, run = train_arguments(settings)
    return train_sr(cfg, **run, step_callback=step_callback)


def _signal_at(step_to_stop: int, signum: int = signal.SIGUSR1):
    def callback(step: int) -> None:
        if step == step_to_stop:
            signal.raise_signal(signum)

    return callback


def _outputs(out_dir):
    log = json.loads((out_dir / "train_log.json").read_text())
    return load_file(str(out_dir / "model.safetensors")), pd.read_csv(out_dir / "trajectory.csv"), log


@pytest.mark.parametrize(
    "model_name, model_kwargs, ema_decay",
    [("edsr", TINY_EDSR, 0.0), ("edsr", TINY_EDSR, 0.9), ("swinir", TINY_SWINIR, 0.0),
     ("mambairv2_light", TINY_MAMBAIRV2, 0.5)],
)
def test_interrupted_and_resumed_run_equals_uninterrupted(data, tmp_path, model_name, model_kwargs, ema_decay):
    def settings(out, **over):
        return _settings(data, out, model_name=model_name, model_kwargs=model_kwargs, ema_decay=ema_decay, **over)

    full = _train(settings(tmp_path / "full"))
    w_full, traj_full, log_full = _outputs(full)

    out = tmp_path / "split"
    previous_handler = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(TrainingInterrupted) as info:
        _train(settings(out, step_callback=_signal_at(3)))
    assert info.value.step == 3 and "SIGUSR1" in str(info.value)
    assert signal.getsignal(signal.SIGUSR1) is previous_handler, "handler not restored"
    assert not out.exists() or not any(out.iterdir()), "an interrupted run must not write outputs"
    assert read_manifest(default_resume_dir(out))["step"] == 3

    _train(settings(out))
    w_split, traj_split, log_split = _outputs(out)
    assert log_split["resumed_from_step"] == 3 and log_full["resumed_from_step"] is None
    assert w_full.keys() == w_split.keys()
    for key in w_full:
        assert torch.equal(w_full[key], w_split[key]), key
    pd.testing.assert_frame_equal(traj_full, traj_split)
    assert traj_full["step"].tolist() == [2, 4, 6]
    assert log_full["loss_curve"] == log_split["loss_curve"]
    assert len(log_full["loss_curve"]) == 6
    assert not default_resume_dir(out).exists(), "resume directory should be removed after success"


def test_sigterm_during_first_step_and_periodic_checkpoint(data, tmp_path):
    out = tmp_path / "run"
    resume = tmp_path / "elsewhere" / "resume"
    with pytest.raises(TrainingInterrupted):
        _train(_settings(data, out, resume_dir=resume, step_callback=_signal_at(5, signal.SIGTERM)))
    # Stopped at 5 after the periodic checkpoint at 4: the newest is 5 and only one file is kept.
    assert read_manifest(resume)["step"] == 5
    assert len(list(resume.glob("ckpt_*.pt"))) == 1
    _train(_settings(data, out, resume_dir=resume))
    _, traj, log = _outputs(out)
    assert log["final_step"] == 6 and log["resumed_from_step"] == 5
    assert traj["step"].tolist() == [2, 4, 6]


def test_corrupt_checkpoint_is_an_error_not_a_restart(data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        _train(_settings(data, out, step_callback=_signal_at(2)))
    resume = default_resume_dir(out)
    ckpt_file = next(resume.glob("ckpt_*.pt"))
    ckpt_file.write_bytes(ckpt_file.read_bytes()[:1000])  # truncated
    with pytest.raises(CorruptCheckpointError, match="truncated or corrupt"):
        _train(_settings(data, out))
    ckpt_file.unlink()
    with pytest.raises(CorruptCheckpointError, match="missing"):
        _train(_settings(data, out))
    (resume / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptCheckpointError, match="unreadable"):
        _train(_settings(data, out))


def test_checkpoint_of_other_settings_is_discarded(data, tmp_path, caplog):
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        _train(_settings(data, out, step_callback=_signal_at(2)))
    _train(_settings(data, out, lr=5e-4))
    assert "other settings" in caplog.text
    assert json.loads((out / "train_log.json").read_text())["resumed_from_step"] is None


def test_non_finite_loss_stops_with_the_step(data, tmp_path):
    done = []
    # A learning rate this large overflows the weights after the first update.
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss .* at step (\d+)") as info:
        _train(_settings(data, tmp_path / "run", lr=1e30, step_callback=done.append))
    assert f"at step {done[-1] + 1}" in str(info.value)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_outputs_and_log(data, tmp_path):
    out = _train(_settings(data, tmp_path / "run", val_hr_dir=None, val_lr_dir=None, steps=2))
    _, traj, log = _outputs(out)
    assert list(traj.columns) == ["step", "psnr"] and traj.empty
    assert log["seed"] == 7 and log["final_step"] == 2 and log["provenance"]["seeds"] == {"seed": 7}
    assert log["provenance"]["software"]["torch"] == torch.__version__
    assert log["settings"]["milestones"] == [2, 5]
    from idc.archs import load_model

    model = load_model(out / "model.safetensors")
    assert model(torch.rand(1, 3, 5, 6)).shape == (1, 3, 20, 24)


@pytest.mark.parametrize(
    "override, error, message",
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"batch_size": -1}, ValueError, "batch_size"),
        ({"lr": 0}, ValueError, "lr"),
        ({"ema_decay": 1.0}, ValueError, "ema_decay"),
        ({"milestones": [5, 2]}, ValueError, "milestones"),
        ({"gt_size": 18}, ValueError, "gt_size"),
        ({"model_name": "edsrr"}, ValueError, "unknown model"),
        ({"model_kwargs": {"num_feats": 8}}, ValueError, "model_kwargs"),
        ({"val_lr_dir": None}, ValueError, "val_hr_dir"),
        ({"store_path": "/nonexistent/store.h5"}, FileNotFoundError, "store"),
        ({"indices_path": "/nonexistent/idx.npy"}, FileNotFoundError, "index file"),
        ({"resume_dir": "RUN/resume"}, ValueError, "outside out_dir"),
    ],
)
def test_bad_settings_fail_before_training(data, tmp_path, override, error, message):
    if "resume_dir" in override:
        override = {"resume_dir": tmp_path / "run" / "resume"}
    with pytest.raises(error, match=message):
        _train(_settings(data, tmp_path / "run", **override))
    assert not (tmp_path / "run").exists()


def test_disk_full_during_checkpoint_keeps_the_previous_one(data, tmp_path, monkeypatch):
    import errno

    real_save = torch.save
    calls = []

    def failing_save(obj, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:  # the checkpoint at step 4: write half, then run out of space
            with open(path, "wb") as fh:
                fh.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="No space"):
        _train(_settings(data, out, checkpoint_every=2))
    resume = default_resume_dir(out)
    assert read_manifest(resume)["step"] == 2
    assert sorted(p.name for p in resume.iterdir()) == ["ckpt_00000002.pt", "manifest.json"]
    monkeypatch.setattr(torch, "save", real_save)
    _train(_settings(data, out, checkpoint_every=2))
    assert json.loads((out / "train_log.json").read_text())["resumed_from_step"] == 2


@pytest.mark.gpu
def test_cuda_training_with_autocast_and_resume(data, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    settings = dict(device="cuda", amp=True, model_name="swinir", model_kwargs=TINY_SWINIR)
    full = _train(_settings(data, tmp_path / "full", **settings))
    with pytest.raises(TrainingInterrupted):
        _train(_settings(data, tmp_path / "split", step_callback=_signal_at(3), **settings))
    split = _train(_settings(data, tmp_path / "split", **settings))
    (w_full, traj_full, log_full), (w_split, traj_split, _) = _outputs(full), _outputs(split)
    assert log_full["settings"]["amp_dtype"] in ("torch.bfloat16", "torch.float16")
    assert np.isfinite([v for _, v in log_full["loss_curve"]]).all()
    # GPU kernels are not bit-deterministic: the resumed run is close, not necessarily equal.
    for key in w_full:
        assert torch.allclose(w_full[key], w_split[key], atol=1e-3), key
    assert np.allclose(traj_full["psnr"], traj_split["psnr"], atol=0.05)


def test_train_config_defaults_are_the_schema_defaults():
    """The schema owns the defaults: every training setting and the validation metric's, with no
    second list in train_sr's signature; a validated config's network builds the config whole."""
    import dataclasses
    import inspect

    from idc.config import load_config
    from idc.schema import load_schema
    from idc.sr.config import TrainConfig
    from tests.conftest import PROJECT_ROOT

    schema = load_schema()
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    recipe = schema["$defs"]["train_settings"]["properties"]
    metric = {k: schema["properties"]["test"]["properties"][k] for k in ("crop_border", "test_y_channel")}
    for key, spec in {**recipe, **metric}.items():
        value = defaults[key]
        assert (list(value) if isinstance(value, tuple) else value) == spec["default"], key
    assert not set(inspect.signature(train_sr).parameters) & set(defaults)
    config = load_config(PROJECT_ROOT / "config" / "demo.yaml")
    name, spec = next(iter(config["models"].items()))
    cfg = TrainConfig.for_network(spec, seed=5, metric=config["test"])
    assert (cfg.model_name, cfg.seed, cfg.crop_border) == (spec["arch"], 5, config["test"]["crop_border"])
    assert {k: getattr(cfg, k) for k in recipe} == {k: tuple(v) if isinstance(v, list) else v
                                                    for k, v in spec["train"].items()}
