"""File-level condensation stage: store in -> synthetic patches + log -> up-sampled store; memorisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from idc.condense.memorisation import nearest_real_psnr, summarise

TINY_SWINIR = dict(upscale=2, in_chans=3, img_size=8, window_size=4, img_range=1.0, depths=[1, 1], embed_dim=6,
                   num_heads=[1, 1], mlp_ratio=1.0, upsampler="pixelshuffledirect", resi_connection="1conv")
# ratio 0.2 of two images of 12 patches: floor(4.8) = 4 synthetic patches, 2 per image
CFG = dict(steps=6, warmup=2, assign_interval=1, assign_times=2, channels=8, kernel=3, num_freqs=16, groups=2,
           log_every=2, checkpoint_every=0, milestones=[5], ratio=0.2)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Module scope (conftest's is per test): the module-scoped `setup` runs on one thread too."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_nearest_real_psnr_matches_definition() -> None:
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    syn = np.stack([real[3], np.clip(real[1].astype(int) + 3, 0, 255).astype(np.uint8)])
    psnr, nearest = nearest_real_psnr(syn, real, chunk=2)
    assert np.isinf(psnr[0]) and nearest.tolist() == [3, 1]
    mse = np.mean((syn[1].astype(float) - real[1].astype(float)) ** 2)
    assert psnr[1] == pytest.approx(10 * np.log10(255**2 / mse))
    s = summarise(psnr)
    assert s["exact_copies"] == 1 and s["max_db"] == pytest.approx(psnr[1]) and s["n"] == 2
    with pytest.raises(ValueError, match="differ in size"):
        nearest_real_psnr(syn[:, :2], real)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    pytest.importorskip("h5py")
    from idc.archs import build_model, save_model
    from idc.data.store import write_patch_store

    root = tmp_path_factory.mktemp("stage")
    rng = np.random.default_rng(0)
    n = 24
    lr = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    hr = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    image_id = np.repeat([0, 1], 12)
    origin = np.zeros((n, 2), dtype=np.int64)
    store = write_patch_store(root / "real.h5", lr, hr, image_id, origin, step=8, source="test", seed=None)
    torch.manual_seed(0)
    model = build_model("swinir", **TINY_SWINIR)
    ext = save_model(root / "teacher.safetensors", model, "swinir", TINY_SWINIR)
    return root, store, ext


def test_condense_upsample_assemble_memorise(setup) -> None:
    from idc.condense.stage import condense_image, memorisation_report, upsample_and_assemble
    from idc.data.store import PatchStore

    root, store, ext = setup
    outs = []
    for image_id in (0, 1):
        out = condense_image(store_path=store, image_id=image_id, extractor_path=ext, out_path=root / f"syn{image_id}.npy",
                             log_path=root / f"syn{image_id}.json", cfg=CFG, seed=7, device="cpu")
        outs.append(out)
        syn = np.load(out)
        assert syn.shape == (2, 3, 8, 8) and syn.dtype == np.float32  # floor(0.2 * 24) = 4, 2 each
        log = json.loads((root / f"syn{image_id}.json").read_text())
        assert log["n_real"] == 12 and log["n_synthetic"] == 2 and log["seed"] == 7 and log["image_id"] == image_id
        assert [r["step"] for r in log["steps"]] == [0, 2, 4, 5]
    # same seed and image -> same file; other image -> other stream
    again = condense_image(store_path=store, image_id=0, extractor_path=ext, out_path=root / "again.npy",
                           log_path=root / "again.json", cfg=CFG, seed=7, device="cpu")
    assert np.array_equal(np.load(again), np.load(outs[0]))
    assert not np.array_equal(np.load(outs[0]), np.load(outs[1]))

    assembled = upsample_and_assemble(synthetic_paths=outs, image_ids=[0, 1], upsampler_path=ext,
                                      out_store=root / "idc.h5", source="idc-test", seed=7, batch_size=3)
    s = PatchStore(assembled)
    assert len(s) == 4 and s.image_id.tolist() == [0, 0, 1, 1]
    lr, hr = s.read([0, 1, 2, 3])
    assert lr.shape == (4, 8, 8, 3) and hr.shape == (4, 16, 16, 3) and lr.dtype == np.uint8
    assert s.attrs["scale"] == 2 and s.attrs["source"] == "idc-test"
    assert np.array_equal(lr[:2], np.round(np.load(outs[0]).transpose(0, 2, 3, 1) * 255).astype(np.uint8))
    rep = json.loads(memorisation_report(synthetic_store=assembled, real_store=store, out_path=root / "mem.json").read_text())
    assert set(rep["instances"]) == {"0", "1"} and rep["overall"]["n"] == 4


def test_packed_images_match_single_images(setup, tmp_path) -> None:
    """A pack gives each image its own base seed (as the workflow's packed jobs do), so each image's
    patches equal those of a job of its own, up to the rounding of batched convolutions."""
    from idc.condense.stage import condense_image, condense_images

    root, store, ext = setup
    seeds = {0: 7, 1: 11}
    outs = condense_images(store_path=store, image_ids=[0, 1], extractor_path=ext,
                           out_paths=[tmp_path / "a.npy", tmp_path / "b.npy"],
                           log_paths=[tmp_path / "a.json", tmp_path / "b.json"], cfg=CFG, seed=list(seeds.values()),
                           device="cpu")
    for out, (image_id, seed) in zip(outs, seeds.items()):
        single = np.load(condense_image(store_path=store, image_id=image_id, extractor_path=ext, cfg=CFG, seed=seed,
                                        out_path=tmp_path / f"s{image_id}.npy", log_path=tmp_path / f"s{image_id}.json"))
        packed = np.load(out)
        assert packed.shape == single.shape and np.abs(packed - single).max() < 1e-4
        log = json.loads(out.with_suffix(".json").read_text())
        alone = json.loads((tmp_path / f"s{image_id}.json").read_text())
        assert log["image_id"] == image_id and log["packed_with"] == [0, 1]
        assert log["seed"] == alone["seed"] == seed and log["instance_seed"] == alone["instance_seed"]
    # another image's seed gives other patches: the seeds reach their images
    other = condense_image(store_path=store, image_id=1, extractor_path=ext, cfg=CFG, seed=7,
                           out_path=tmp_path / "o.npy", log_path=tmp_path / "o.json")
    assert np.abs(np.load(other) - np.load(outs[1])).max() > 1e-3
    with pytest.raises(ValueError, match="1 seeds for 2 images"):
        condense_images(store_path=store, image_ids=[0, 1], extractor_path=ext, out_paths=[tmp_path / "x.npy"] * 2,
                        log_paths=[tmp_path / "x.json"] * 2, cfg=CFG, seed=[7], device="cpu")


class PatchByPatch(torch.nn.Module):
    """The wrapped extractor applied to one contiguous patch at a time: a patch's features do not
    depend on the other patches of the call nor on its memory layout. (On the CPU a convolution
    rounds a batch of one differently from a larger batch, and a rotated view differently from a
    contiguous copy: a pack's features differ from a single run's by such rounding.)"""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model.features(x[i:i + 1].contiguous()) for i in range(x.shape[0])])


@pytest.mark.parametrize("settings", [{"augment": "dihedral"},
                                      {"freq_pool": 4, "assign_order": "random", "parametrisation": "sigmoid"}])
def test_a_pack_is_its_single_runs_bit_for_bit_when_features_ignore_the_batch(setup, settings) -> None:
    """Packing changes nothing but the extractor's batch: with an extractor that ignores it, each
    instance of a pack equals its own run exactly, over a run with assignment events and one-patch
    instances, with joint augmentation or a frequency pool. So every instance draws what its single run draws (init,
    filters, k-means, frequencies, augmentation), keeps its own loss, and shares no state with the
    others; what a real pack differs by is the rounding of the batched extractor, which the
    optimisation amplifies (docs/hpc.md)."""
    from idc.archs import deterministic_inference, load_model
    from idc.condense.condenser import condense_instances
    from idc.data.store import PatchStore

    _, store, ext = setup
    s = PatchStore(store)
    reals = [torch.from_numpy(s.read_lr(s.indices_of_image(i))).permute(0, 3, 1, 2).float() / 255.0 for i in (0, 1)]
    reals.append(reals[1][:7])  # a third instance of another size
    cfg = {**CFG, "steps": 24, "milestones": [16, 20], "assign_interval": 2, "assign_times": 4, **settings}
    extractor = PatchByPatch(deterministic_inference(load_model(ext)))
    seeds, counts = [3, 5, 8], [1, 2, 1]
    packed = condense_instances(reals, extractor, cfg, seeds=seeds, n_synthetic=counts, progress=False)
    for real, seed, n, (syn, log) in zip(reals, seeds, counts, packed):
        [(alone, alone_log)] = condense_instances([real], extractor, cfg, seeds=[seed], n_synthetic=[n], progress=False)
        assert torch.equal(syn, alone)
        assert len(log["assignment_events"]) > 1 and log["assignment_events"] == alone_log["assignment_events"]
        assert [r["loss"] for r in log["steps"]] == [r["loss"] for r in alone_log["steps"]]
    assert not torch.equal(packed[1][0][:1], packed[2][0])  # the instances are not copies of each other


def test_unpacking_copies_an_images_files_to_the_single_job_paths(setup, tmp_path) -> None:
    from idc.condense.stage import PACKED_SUFFIXES, condense_images, unpack_condensed

    root, store, ext = setup
    pack = tmp_path / "packs" / "0"
    pack.mkdir(parents=True)
    condense_images(store_path=store, image_ids=[0, 1], extractor_path=ext, out_paths=[pack / "a.npy", pack / "b.npy"],
                    log_paths=[pack / "a.json", pack / "b.json"], cfg=CFG, seed=[1, 2], device="cpu")
    outs = [tmp_path / f"b{suffix}" for suffix in PACKED_SUFFIXES]
    unpack_condensed(pack, "b", outs)
    for suffix, out in zip(PACKED_SUFFIXES, outs):
        assert out.read_bytes() == (pack / f"b{suffix}").read_bytes()
    # a pack that lacks an image's file, or holds broken patches, is refused naming the file
    (pack / "a.snapshots.npz").unlink()
    with pytest.raises(FileNotFoundError, match="a.snapshots.npz"):
        unpack_condensed(pack, "a", [tmp_path / f"a{suffix}" for suffix in PACKED_SUFFIXES])
    np.save(pack / "b.npy", np.full((2, 3, 8, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="b.npy"):
        unpack_condensed(pack, "b", [tmp_path / f"c{suffix}" for suffix in PACKED_SUFFIXES])
    assert not (tmp_path / "c.npy").exists()


def test_stage_errors_name_the_culprit(setup, tmp_path) -> None:
    from idc.condense.stage import condense_image

    root, store, ext = setup
    kw = dict(store_path=store, extractor_path=ext, out_path=tmp_path / "o.npy", log_path=tmp_path / "o.json", seed=0)
    with pytest.raises(ValueError, match="'stepz'"):
        condense_image(image_id=0, cfg={"stepz": 3}, **kw)
    with pytest.raises(ValueError, match="image 5"):
        condense_image(image_id=5, cfg=CFG, **kw)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        condense_image(image_id=0, cfg=CFG, **{**kw, "store_path": tmp_path / "missing.h5"})
    assert not (tmp_path / "o.npy").exists()


def test_cli_condense_image(setup, tmp_path) -> None:
    from idc.cli import main

    root, store, ext = setup
    rc = main(["condense-image", "--store", str(store), "--image-id", "1", "--extractor", str(ext), "--out",
               str(tmp_path / "s.npy"), "--log", str(tmp_path / "s.json"), "--variant", "v4",
               "--set", "steps=3", "--set", "warmup=1", "--set", "assign_interval=1", "--set", "assign_times=1",
               "--set", "channels=8", "--set", "kernel=3", "--set", "num_freqs=8", "--set", "groups=2",
               "--set", "budget=ceil_per_image"])
    assert rc == 0 and np.load(tmp_path / "s.npy").shape == (2, 3, 8, 8)  # ceil(0.1 x 12); equal: 1 of 2
    log = json.loads((tmp_path / "s.json").read_text())
    assert log["config"]["use_pair"] is False and log["budget"]["rule"] == "ceil_per_image"
    assert main(["condense-image", "--store", str(store), "--image-id", "1", "--extractor", str(ext), "--out",
                 str(tmp_path / "t.npy"), "--log", str(tmp_path / "t.json"), "--set", "ratio=1.5"]) == 1


def test_per_image_shares_sum_to_the_baselines_count(setup, tmp_path) -> None:
    """Images of 12, 12, 4 and 3 patches at r = 10%: the baselines take floor(3.1) = 3 pairs;
    r N_c = 1.2, 1.2, 0.4, 0.3 give 1, 1, 1 (largest leftover remainder) and 0. The image with 0
    gets an empty file and a log saying why; up-sampling, assembly, memorisation and the loss
    figure take it."""
    from idc.condense.stage import condense_image, condense_images, memorisation_report, upsample_and_assemble
    from idc.data.store import PatchStore, write_patch_store
    from idc.report.figures import plot_loss_curves
    from idc.select.stage import select_baseline

    _, _, ext = setup
    sizes = [12, 12, 4, 3]
    rng = np.random.default_rng(1)
    n = sum(sizes)
    store = write_patch_store(tmp_path / "real.h5", rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
                              rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
                              np.repeat(np.arange(4), sizes), np.zeros((n, 2), dtype=np.int64), step=8,
                              source="test", seed=None)
    cfg = {**CFG, "ratio": 0.1}
    outs = [condense_image(store_path=store, image_id=i, extractor_path=ext, out_path=tmp_path / f"{i}.npy",
                           log_path=tmp_path / f"{i}.json", cfg=cfg, seed=3, device="cpu") for i in range(4)]
    got = [np.load(p).shape[0] for p in outs]
    baseline = np.load(select_baseline(store_path=store, method="random", ratio=0.1, out_path=tmp_path / "r.npy",
                                       seed=0, n_splits=2, device="cpu"))
    assert got == [1, 1, 1, 0] and sum(got) == len(baseline) == 3
    assert np.load(outs[3]).shape == (0, 3, 8, 8) and np.load(outs[3]).dtype == np.float32
    logs = [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(4)]
    assert [(g["n_real"], g["n_synthetic"]) for g in logs] == list(zip(sizes, got))
    assert all(g["budget"] == {"rule": "equal", "ratio": 0.1, "store_patches": 31, "store_images": 4,
                               "store_total": 3} for g in logs)
    assert logs[3]["steps"] == [] and "no optimisation ran" in logs[3]["skipped"] and "skipped" not in logs[0]
    # packed, the images keep their shares of the whole store
    packed = condense_images(store_path=store, image_ids=[2, 3], extractor_path=ext, cfg=cfg, seed=3, device="cpu",
                             out_paths=[tmp_path / "p2.npy", tmp_path / "p3.npy"],
                             log_paths=[tmp_path / "p2.json", tmp_path / "p3.json"])
    assert [np.load(p).shape[0] for p in packed] == [1, 0]
    assert np.abs(np.load(packed[0]) - np.load(outs[2])).max() < 1e-2
    assembled = upsample_and_assemble(synthetic_paths=outs, image_ids=list(range(4)), upsampler_path=ext,
                                      out_store=tmp_path / "idc.h5", source="idc-test", seed=3)
    s = PatchStore(assembled)
    assert len(s) == len(baseline) and s.image_id.tolist() == [0, 1, 2]
    rep = json.loads(memorisation_report(synthetic_store=assembled, real_store=store,
                                         out_path=tmp_path / "mem.json").read_text())
    assert set(rep["instances"]) == {"0", "1", "2"}
    assert plot_loss_curves([tmp_path / f"{i}.json" for i in range(4)], tmp_path / "loss.png").is_file()
    # the earlier rule: ceil per image, one patch at least, more than the baselines
    old = [condense_image(store_path=store, image_id=i, extractor_path=ext, out_path=tmp_path / f"c{i}.npy",
                          log_path=tmp_path / f"c{i}.json", cfg={**cfg, "budget": "ceil_per_image"}, seed=3,
                          device="cpu") for i in (0, 3)]
    assert [np.load(p).shape[0] for p in old] == [2, 1]
