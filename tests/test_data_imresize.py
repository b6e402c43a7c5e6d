"""MATLAB-compatible imresize: bit-exact Set5 LR, BasicSR fixture cases, kernel properties."""

from __future__ import annotations

import json

import numpy as np
import pytest

from idc.data.images import read_image
from idc.data.imresize import imresize, imresize_uint8, modcrop, resize_weights
from tests.conftest import shared_path

SET5 = ("baby", "bird", "butterfly", "head", "woman")


@pytest.mark.parametrize("name", SET5)
def test_set5_lr_bit_exact(name: str) -> None:
    hr = read_image(shared_path("data", "Set5", "HR", f"{name}.png"))
    lr_ref = read_image(shared_path("data", "Set5", "LR_bicubic", "X4", f"{name}x4.png"))
    lr = imresize_uint8(modcrop(hr, 4), 0.25)
    assert lr.dtype == np.uint8 and lr.shape == lr_ref.shape
    assert int(np.abs(lr.astype(int) - lr_ref).max()) == 0


def test_fixture_cases(fixtures_dir) -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    tensors = safetensors_numpy.load_file(str(fixtures_dir / "metrics.safetensors"))
    cases = json.loads((fixtures_dir / "metrics.json").read_text())["imresize"]["cases"]
    assert len(cases) == 5
    for name, case in cases.items():
        call = case["call"]
        scale = float(call.split("scale=")[1].split(",")[0].rstrip(")"))
        antialias = "antialiasing=False" not in call
        out = imresize(tensors[case["input_key"]], scale, antialiasing=antialias)
        ref = tensors[case["output_key"]]
        assert out.shape == ref.shape, name
        assert np.abs(out - ref).max() < 1e-6, name


def test_official_failure_case_resizes() -> None:
    # BasicSR raises on 64x48 at 1/4 without antialiasing; the MATLAB index map has no such gap.
    img = np.random.default_rng(0).random((64, 48, 3))
    out = imresize(img, 0.25, antialiasing=False)
    assert out.shape == (16, 12, 3)


@pytest.mark.parametrize("n_in,scale", [(64, 0.25), (61, 0.25), (16, 4.0), (10, 0.5), (7, 3.0)])
def test_weights_partition_of_unity(n_in: int, scale: float) -> None:
    import math

    n_out = math.ceil(n_in * scale)
    w, idx = resize_weights(n_in, n_out, scale)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    assert idx.min() >= 0 and idx.max() < n_in


def test_constant_image_stays_constant_and_gray_keeps_2d() -> None:
    img = np.full((37, 23), 0.3)
    out = imresize(img, 0.25)
    assert out.shape == (10, 6)
    np.testing.assert_allclose(out, 0.3, atol=1e-12)
    u8 = np.full((40, 40), 200, np.uint8)
    assert (imresize_uint8(u8, 0.5) == 200).all()


def test_uint8_rounding_half_away_from_zero() -> None:
    # Upscaling by 1 is the identity; a 2-pixel ramp at x2 produces exact .5 values? Check the
    # rounding helper directly through a known value: mean of 100 and 101 is 100.5 -> 101.
    from idc.data.imresize import _round_uint8

    assert _round_uint8(np.array([100.5, 0.49999, -3.0, 254.5, 300.0])).tolist() == [101, 0, 0, 255, 255]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="scale"):
        imresize(np.zeros((4, 4)), 0)
    with pytest.raises(ValueError, match="uint8"):
        imresize_uint8(np.zeros((4, 4)), 0.5)
    with pytest.raises(ValueError, match="smaller"):
        modcrop(np.zeros((3, 3)), 4)
    assert modcrop(np.zeros((10, 9, 3)), 4).shape == (8, 8, 3)
