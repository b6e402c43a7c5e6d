"""The teacher-relabelling control: a relabelled set's LR side is its selection's real patches and
its HR side the teacher's output on them; IDC at 0 steps (variant start) is the relabelled set of
its own starting patches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

TINY_SWINIR = dict(upscale=2, in_chans=3, img_size=8, window_size=4, img_range=1.0, depths=[1], embed_dim=6,
                   num_heads=[1], mlp_ratio=1.0, upsampler="pixelshuffledirect", resi_connection="1conv")
# 0.2 of two images of 12 patches: 4 synthetic patches, 2 per image
START = dict(channels=8, kernel=3, num_freqs=16, groups=2, log_every=1, checkpoint_every=0, ratio=0.2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    pytest.importorskip("h5py")
    from idc.archs import build_model, save_model
    from idc.data.store import write_patch_store

    root = tmp_path_factory.mktemp("relabel")
    rng = np.random.default_rng(1)
    n = 24
    lr = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    hr = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    image_id = np.repeat([0, 1], 12)
    origin = np.stack([np.arange(n) * 4, np.arange(n) * 2], axis=1).astype(np.int64)
    store = write_patch_store(root / "real.h5", lr, hr, image_id, origin, step=8, source="test", seed=None)
    torch.manual_seed(0)
    teacher = save_model(root / "teacher.safetensors", build_model("swinir", **TINY_SWINIR), "swinir", TINY_SWINIR)
    return root, store, teacher


def test_relabelled_selection_is_real_lr_with_the_teachers_hr(setup, tmp_path) -> None:
    from idc.archs import load_model
    from idc.condense.relabel import relabel_store
    from idc.data.store import PatchStore

    _, store, teacher = setup
    indices = np.array([1, 5, 13, 20], dtype=np.int64)
    out = relabel_store(store_path=store, upsampler_path=teacher, out_store=tmp_path / "r.h5", indices=indices,
                        source="test", seed=0, device="cpu")
    real, relabelled = PatchStore(store), PatchStore(out)
    np.testing.assert_array_equal(relabelled.read_lr(np.arange(4)), real.read_lr(indices))
    np.testing.assert_array_equal(relabelled.image_id, real.image_id[indices])
    np.testing.assert_array_equal(relabelled.origin, real.origin[indices])
    # The HR side, computed independently: the teacher on the stored LR, rounded to uint8.
    model = load_model(teacher).eval()
    with torch.no_grad():
        x = torch.from_numpy(real.read_lr(indices)).permute(0, 3, 1, 2).float() / 255.0
        expected = (model(x).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    got = relabelled.read_hr(np.arange(4))
    assert got.shape == (4, 16, 16, 3)
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got, real.read_hr(indices))  # a relabelling, not a copy
    assert relabelled.attrs["hr_source"] == "teacher"


def test_relabelling_everything_and_bad_indices(setup, tmp_path) -> None:
    from idc.condense.relabel import relabel_store
    from idc.data.store import PatchStore

    _, store, teacher = setup
    out = relabel_store(store_path=store, upsampler_path=teacher, out_store=tmp_path / "all.h5", source="t",
                        seed=None, device="cpu")
    assert len(PatchStore(out)) == 24
    with pytest.raises(ValueError, match=r"outside \[0, 24\)"):
        relabel_store(store_path=store, upsampler_path=teacher, out_store=tmp_path / "bad.h5",
                      indices=np.array([3, 24]), source="t", seed=None, device="cpu")
    with pytest.raises(FileNotFoundError, match="up-sampler not found"):
        relabel_store(store_path=store, upsampler_path=tmp_path / "none.safetensors", out_store=tmp_path / "x.h5",
                      source="t", seed=None, device="cpu")
    assert not (tmp_path / "bad.h5").exists()


def test_idc_at_zero_steps_is_the_relabelled_set_of_its_starting_patches(setup, tmp_path) -> None:
    from idc.condense.config import resolve_condense_config
    from idc.condense.instance import initial_real_picks
    from idc.condense.relabel import relabel_store
    from idc.condense.stage import condense_image, upsample_and_assemble
    from idc.data.store import PatchStore

    _, store, teacher = setup
    cfg = resolve_condense_config({**START, "steps": 800, "warmup": 160}, variant="start", ratio=0.2)
    assert cfg["steps"] == 0 and cfg["init"] == "real"
    paths, seeds = [], {0: 11, 1: 12}
    for image_id in (0, 1):
        paths.append(condense_image(store_path=store, image_id=image_id, extractor_path=teacher,
                                    out_path=tmp_path / f"s{image_id}.npy", log_path=tmp_path / f"s{image_id}.json",
                                    cfg=cfg, seed=seeds[image_id], device="cpu"))
    start = upsample_and_assemble(synthetic_paths=paths, image_ids=[0, 1], upsampler_path=teacher,
                                  out_store=tmp_path / "start.h5", source="t", seed=0, device="cpu")
    real = PatchStore(store)
    # Each image starts from the init's draw under its instance seed (recorded in its log).
    instance_seeds = [json.loads((tmp_path / f"s{i}.json").read_text())["instance_seed"] for i in (0, 1)]
    picks = np.concatenate([real.indices_of_image(i)[initial_real_picks(12, 2, instance_seeds[i])] for i in (0, 1)])
    relabelled = relabel_store(store_path=store, upsampler_path=teacher, out_store=tmp_path / "r.h5",
                               indices=picks, source="t", seed=0, device="cpu")
    a, b = PatchStore(start), PatchStore(relabelled)
    assert len(a) == len(b) == 4
    np.testing.assert_array_equal(a.read_lr(np.arange(4)), b.read_lr(np.arange(4)))
    np.testing.assert_array_equal(a.read_hr(np.arange(4)), b.read_hr(np.arange(4)))
    np.testing.assert_array_equal(a.image_id, b.image_id)
