"""Teachers from released weights: strict conversion, identical network, validation scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from idc.archs import build_model, load_model
from idc.data.imresize import imresize_uint8
from idc.sr.teacher_import import import_teacher

EDSR_KWARGS = dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=4, res_scale=1)


@pytest.fixture
def valset(tmp_path):
    hr_dir, lr_dir = tmp_path / "val" / "HR", tmp_path / "val" / "LR_bicubic" / "X4"
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        smooth = np.kron(rng.integers(0, 256, (8, 8, 3)), np.ones((4, 4, 1))).astype(np.uint8)
        Image.fromarray(smooth).save(hr_dir / f"img{i}.png")
        Image.fromarray(imresize_uint8(smooth, 0.25)).save(lr_dir / f"img{i}.png")
    return {"val": (hr_dir, lr_dir)}


def test_released_basicsr_checkpoint_becomes_the_same_network(tmp_path, valset):
    torch.manual_seed(0)
    released = build_model("edsr", **EDSR_KWARGS).eval()
    # BasicSR's layout: the averaged weights under params_ema, the raw ones under params.
    noise = {k: v + 1.0 for k, v in released.state_dict().items()}
    torch.save({"params": noise, "params_ema": released.state_dict()}, tmp_path / "EDSR_x4.pth")
    model_path = import_teacher(weights=tmp_path / "EDSR_x4.pth", out_model=tmp_path / "t" / "model.safetensors",
                                out_metrics=tmp_path / "t" / "validation.csv", arch="edsr", kwargs=EDSR_KWARGS,
                                testsets=valset, device="cpu")
    loaded = load_model(model_path)
    loaded = loaded[0] if isinstance(loaded, tuple) else loaded
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), released(x))  # params_ema, not params
    scores = pd.read_csv(tmp_path / "t" / "validation.csv")
    assert len(scores) == 2 and set(scores["testset"]) == {"val"}
    assert scores["psnr"].between(5, 60).all()


def test_weights_of_another_architecture_are_refused_naming_the_file(tmp_path, valset):
    torch.save(build_model("edsr", **{**EDSR_KWARGS, "num_feat": 16}).state_dict(), tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth"):
        import_teacher(weights=tmp_path / "other.pth", out_model=tmp_path / "t" / "model.safetensors",
                       out_metrics=tmp_path / "t" / "validation.csv", arch="edsr", kwargs=EDSR_KWARGS,
                       testsets=valset, device="cpu")
    assert not (tmp_path / "t" / "model.safetensors").exists()
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        import_teacher(weights=tmp_path / "missing.pth", out_model=tmp_path / "t" / "model.safetensors",
                       out_metrics=tmp_path / "t" / "validation.csv", arch="edsr", kwargs=EDSR_KWARGS,
                       testsets=valset, device="cpu")
