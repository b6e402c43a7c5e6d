"""SR testing: tiled inference equals whole-image inference, per-image scores on real test images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from idc.archs import build_model, save_model
from idc.data.images import read_image
from idc.data.imresize import imresize_uint8, modcrop
from idc.sr import test as sr_test
from idc.sr.metrics import calculate_psnr, calculate_ssim


class ConvSR(nn.Module):
    """Convolutions only: receptive-field radius 3 LR pixels (three 3x3 convs) + pixel shuffle."""

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + 0.5


@pytest.fixture
def lr_image():
    return np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype=np.uint8)


def _whole_and_tiled(model, img, tile, overlap):
    x = torch.from_numpy(img.transpose(2, 0, 1)).float()[None] / 255
    with torch.no_grad():
        whole = model(x)
    tiled = sr_test.upscale_tensor(model, x, tile=tile, tile_overlap=overlap)
    return whole, tiled


@pytest.mark.parametrize("tile, overlap", [(12, 8), (16, 6), (10, 7), (64, 8)])
def test_tiles_equal_whole_image_for_a_conv_model(lr_image, tile, overlap):
    torch.manual_seed(0)
    whole, tiled = _whole_and_tiled(ConvSR().eval(), lr_image, tile, overlap)
    assert tiled.shape == whole.shape == (1, 3, 148, 116)
    assert (tiled - whole).abs().max() < 1e-5


def test_tiles_with_too_little_overlap_differ(lr_image):
    # Margin 1 < receptive radius 3: tile borders show. This is what the overlap is for.
    torch.manual_seed(0)
    whole, tiled = _whole_and_tiled(ConvSR().eval(), lr_image, 12, 2)
    assert (tiled - whole).abs().max() > 1e-3


def test_tiles_equal_whole_image_for_edsr(lr_image):
    # EDSR with one block: radius 4 LR pixels in the body plus < 1 in the up-sampler.
    torch.manual_seed(0)
    model = build_model("edsr", num_feat=8, num_block=1, upscale=4).eval()
    whole, tiled = _whole_and_tiled(model, lr_image, 16, 12)
    assert (tiled - whole).abs().max() < 1e-5 * 255  # EDSR works in the x255 domain internally


def test_upscale_image_range_and_rounding(lr_image):
    torch.manual_seed(0)
    out = sr_test.upscale_image(ConvSR().eval(), lr_image, device="cpu")
    assert out.dtype == np.float32 and out.shape == (148, 116, 3)
    assert out.min() >= 0 and out.max() <= 1
    u8 = sr_test.to_uint8(out)
    assert u8.dtype == np.uint8 and np.abs(u8 / 255.0 - out).max() <= 0.5 / 255 + 1e-7
    with pytest.raises(ValueError, match="tile"):
        sr_test.upscale_image(ConvSR(), lr_image, tile=8, tile_overlap=8, device="cpu")


class BicubicUp(nn.Module):
    """torch bicubic x4 (a=-0.75): a deterministic 'model' with a known, sensible output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)


def test_scores_on_set5_match_a_direct_computation(shared_data):
    hr_dir, lr_dir = shared_data / "Set5" / "HR", shared_data / "Set5" / "LR_bicubic" / "X4"
    pairs = sr_test.pair_test_images(hr_dir, lr_dir, 4)
    assert [p[0] for p in pairs] == ["baby", "bird", "butterfly", "head", "woman"]
    rows = sr_test.evaluate_images(BicubicUp(), sr_test.load_test_images(pairs, 4), crop_border=4,
                                   test_y_channel=True, device=torch.device("cpu"))
    # Direct computation for one image.
    name, hr_path, lr_path = pairs[2]
    lr = read_image(lr_path)
    x = torch.from_numpy(lr.transpose(2, 0, 1)).float()[None] / 255
    sr = np.clip(np.round(BicubicUp()(x)[0].numpy().transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)
    hr = modcrop(read_image(hr_path), 4)
    assert rows[2]["psnr"] == pytest.approx(calculate_psnr(sr, hr, 4, True), abs=1e-12)
    assert rows[2]["ssim"] == pytest.approx(calculate_ssim(sr, hr, 4, True), abs=1e-12)
    # Bicubic x4 on Set5 (Y, crop 4) is 28.4 dB in the literature for MATLAB bicubic; torch's
    # a=-0.75 kernel is within a few tenths.
    mean = np.mean([r["psnr"] for r in rows])
    assert 27.5 < mean < 29.0


def test_test_sr_writes_rows(shared_data, tmp_path):
    torch.manual_seed(0)
    model = build_model("edsr", num_feat=4, num_block=1, upscale=4)
    save_model(tmp_path / "m.safetensors", model, "edsr", dict(num_feat=4, num_block=1, upscale=4))
    # A second test set: Set14's grayscale 'bridge' and the non-multiple-of-4 'comic', with LR
    # made here by MATLAB-bicubic from the mod-cropped HR.
    set14 = shared_data / "Set14" / "HR"
    hr_dir, lr_dir = tmp_path / "s14" / "HR", tmp_path / "s14" / "LR"
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir(parents=True)
    from idc.data.images import write_png

    for name in ("bridge", "comic"):
        hr = read_image(set14 / f"{name}.png")
        (hr_dir / f"{name}.png").symlink_to(set14 / f"{name}.png")
        write_png(lr_dir / f"{name}x4.png", imresize_uint8(modcrop(hr, 4), 0.25))
    out = tmp_path / "scores.csv"
    frame = sr_test.test_sr(
        model_path=tmp_path / "m.safetensors",
        testsets={"Set5": (shared_data / "Set5" / "HR", shared_data / "Set5" / "LR_bicubic" / "X4"),
                  "mini14": (hr_dir, lr_dir)},
        out_csv=out, device="cpu",
    )
    assert list(frame.columns) == ["testset", "image", "psnr", "ssim"]
    assert frame["testset"].tolist() == ["Set5"] * 5 + ["mini14"] * 2
    assert frame["image"].tolist()[-2:] == ["bridge", "comic"]
    assert np.isfinite(frame[["psnr", "ssim"]].to_numpy()).all()
    pd.testing.assert_frame_equal(pd.read_csv(out), frame)
    assert not list(tmp_path.glob(".*.tmp*"))


def test_test_sr_bad_input(shared_data, tmp_path):
    torch.manual_seed(0)
    model = build_model("edsr", num_feat=4, num_block=1, upscale=4)
    save_model(tmp_path / "m.safetensors", model, "edsr", dict(num_feat=4, num_block=1, upscale=4))
    hr = shared_data / "Set5" / "HR"
    with pytest.raises(FileNotFoundError, match="model"):
        sr_test.test_sr(model_path=tmp_path / "none.safetensors", testsets={"a": (hr, hr)}, out_csv=tmp_path / "o.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no LR file for baby"):
        sr_test.test_sr(model_path=tmp_path / "m.safetensors", testsets={"a": (hr, empty)}, out_csv=tmp_path / "o.csv")
    # HR images as their own "LR": found by name, but the geometry check refuses them.
    with pytest.raises(ValueError, match="does not match"):
        sr_test.test_sr(model_path=tmp_path / "m.safetensors", testsets={"a": (hr, hr)}, out_csv=tmp_path / "o.csv")
    lr_dir = tmp_path / "lr"
    lr_dir.mkdir()
    (lr_dir / "babyx4.png").symlink_to(shared_data / "Set5" / "LR_bicubic" / "X4" / "babyx4.png")
    with pytest.raises(FileNotFoundError, match="bird"):
        sr_test.test_sr(model_path=tmp_path / "m.safetensors", testsets={"a": (hr, lr_dir)}, out_csv=tmp_path / "o.csv")
    # A broken image in the last test set is found before the first one is scored.
    (lr_dir / "birdx4.png").write_bytes(b"not a png")
    good = (hr, shared_data / "Set5" / "LR_bicubic" / "X4")
    with pytest.raises(ValueError, match="birdx4"):
        sr_test.test_sr(model_path=tmp_path / "m.safetensors", testsets={"ok": good, "bad": (hr, lr_dir)},
                        out_csv=tmp_path / "o.csv")
    assert not (tmp_path / "o.csv").exists()


def test_non_finite_output_is_an_error_not_a_score(shared_data):
    class Broken(BicubicUp):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * float("nan")

    pairs = sr_test.pair_test_images(shared_data / "Set5" / "HR", shared_data / "Set5" / "LR_bicubic" / "X4", 4)
    with pytest.raises(FloatingPointError, match="NaN or infinite values for image baby"):
        sr_test.evaluate_images(Broken(), sr_test.load_test_images(pairs, 4), crop_border=2, test_y_channel=True,
                                device=torch.device("cpu"))
