"""Verdict statistics: paired differences with hierarchical bootstrap intervals on metrics with a
known answer, the pairing of replicates and images, determinism, and the Markdown's warning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from idc.report.verdict import (
    ALL,
    VERDICT_COLUMNS,
    VerdictSpec,
    make_verdict,
    paired_difference,
    render_verdict_markdown,
    verdict_frame,
)

SIZES = {"Set5": 5, "Set14": 14}
MODELS = ("edsr",)


def metrics(shifts: dict[str, float], *, noise: float = 0.1, replicates: dict[str, list[int]] | int = 3,
            models: tuple[str, ...] = MODELS, sizes: dict[str, int] = SIZES, seed: int = 0,
            same_noise: tuple[str, ...] = ()) -> pd.DataFrame:
    """Per-image metrics: image base + replicate effect + the method's shift + independent noise
    per (method, replicate, image). Methods in `same_noise` share the noise of the first of them,
    so they differ by their shifts exactly."""
    rng = np.random.default_rng(seed)
    images = [(t, f"img{i:03d}") for t, n in sizes.items() for i in range(n)]
    base = rng.uniform(24, 34, size=len(images))
    rows = []
    shared: dict[tuple[str, int], np.ndarray] = {}
    for method, shift in shifts.items():
        reps = replicates[method] if isinstance(replicates, dict) else list(range(1, replicates + 1))
        for model in models:
            for replicate in reps:
                effect = 0.05 * np.sin(replicate)
                draw = rng.normal(size=len(images))
                if method in same_noise:
                    draw = shared.setdefault((model, replicate), draw)
                psnr = base + effect + shift + noise * draw
                ssim = 0.8 + shift / 100 + noise / 100 * draw
                rows += [{"method": method, "replicate": replicate, "model": model, "testset": t, "image": i,
                          "psnr": p, "ssim": s} for (t, i), p, s in zip(images, psnr, ssim)]
    return pd.DataFrame(rows)


def spec(methods: tuple[str, ...] = ("a", "b"), *, reference: str = "a", whole: str | None = None,
         **kwargs: object) -> VerdictSpec:
    return VerdictSpec(methods=methods, models=kwargs.pop("models", MODELS), testsets=tuple(SIZES),
                       reference=reference, whole=whole, n_boot=kwargs.pop("n_boot", 1000), **kwargs)


def one(frame: pd.DataFrame, method: str, versus: str, *, testset: str = ALL, metric: str = "psnr",
        model: str = "edsr") -> pd.Series:
    rows = frame[(frame["method"] == method) & (frame["versus"] == versus) & (frame["testset"] == testset)
                 & (frame["metric"] == metric) & (frame["model"] == model)]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# ---------------------------------------------------------------- paired_difference


def test_constant_difference_gives_degenerate_interval():
    rng = np.random.default_rng(3)
    b = rng.integers(160, 280, size=(4, 20)) / 8  # on a grid where b + 0.375 - b is exact
    assert np.all((b + 0.375) - b == 0.375)
    assert paired_difference(b + 0.375, b, n_boot=500, rng=rng, level=0.95) == (0.375, 0.375, 0.375)
    assert paired_difference(np.full((1, 7), 0.3), np.zeros((1, 7)), n_boot=50, rng=rng,
                             level=0.9) == pytest.approx((0.3, 0.3, 0.3), abs=1e-15)
    # Differences equal up to rounding of the subtraction: an interval of rounding width.
    a = rng.normal(30, 2, size=(4, 20))
    diff, low, high = paired_difference(a + 0.3, a, n_boot=500, rng=rng, level=0.95)
    assert (diff, low, high) == pytest.approx((0.3, 0.3, 0.3), abs=1e-12)


def test_matches_a_plain_loop_bootstrap():
    """The vectorised draw (row counts @ d @ column counts) is the mean over resampled cells."""
    rng = np.random.default_rng(5)
    a = rng.normal(0, 1, size=(4, 12)) + rng.normal(0, 1, size=(4, 1))
    b = np.zeros_like(a)
    d = a - b
    loop = np.random.default_rng(6)
    means = [d[loop.integers(0, 4, 4)][:, loop.integers(0, 12, 12)].mean() for _ in range(8000)]
    expected = np.quantile(means, [0.05, 0.95])
    diff, low, high = paired_difference(a, b, n_boot=8000, rng=np.random.default_rng(7), level=0.9)
    assert diff == pytest.approx(d.mean())
    assert (high - low) == pytest.approx(expected[1] - expected[0], rel=0.06)
    assert low == pytest.approx(expected[0], abs=0.04) and high == pytest.approx(expected[1], abs=0.04)


def test_replicates_and_images_are_both_resampled():
    # d varies between replicates only: an image-only bootstrap would give [diff, diff].
    by_replicate = np.array([[0.1], [0.3], [0.5]]) * np.ones((3, 10))
    _, low, high = paired_difference(by_replicate, np.zeros((3, 10)), n_boot=500, rng=np.random.default_rng(0),
                                     level=0.95)
    assert low < 0.3 < high
    # One replicate: only images are resampled; d varies between images.
    by_image = np.linspace(-1, 1, 9)[None, :] + 0.2
    diff, low, high = paired_difference(by_image, np.zeros((1, 9)), n_boot=500, rng=np.random.default_rng(0),
                                        level=0.95)
    assert diff == pytest.approx(0.2) and low < 0.2 < high


def test_draws_in_small_chunks_give_the_same_interval(monkeypatch):
    import idc.report.verdict as verdict

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 50)), rng.normal(size=(3, 50))
    at_once = paired_difference(a, b, n_boot=4000, rng=np.random.default_rng(2), level=0.9)
    monkeypatch.setattr(verdict, "_CHUNK_CELLS", 50 * 7)  # 7 draws a chunk, the last one shorter
    chunked = paired_difference(a, b, n_boot=4000, rng=np.random.default_rng(2), level=0.9)
    assert chunked[0] == at_once[0]
    assert chunked[1:] == pytest.approx(at_once[1:], abs=0.03)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="shape"):
        paired_difference(np.zeros((2, 3)), np.zeros((2, 4)), n_boot=10, rng=np.random.default_rng(0), level=0.95)
    with pytest.raises(ValueError, match="shape"):
        paired_difference(np.zeros(3), np.zeros(3), n_boot=10, rng=np.random.default_rng(0), level=0.95)


# ---------------------------------------------------------------- verdict_frame


def test_constant_shift_is_found_and_inside_the_interval():
    per_image = metrics({"a": 0.0, "b": 0.3})
    frame = verdict_frame(per_image, spec())
    assert tuple(frame.columns) == VERDICT_COLUMNS
    row = one(frame, "b", "a")
    assert row["ci_low"] <= 0.3 <= row["ci_high"]
    assert row["reading"] == "better"
    pivot = per_image.pivot_table(index=["replicate", "testset", "image"], columns="method", values="psnr")
    assert row["diff"] == pytest.approx((pivot["b"] - pivot["a"]).mean(), rel=1e-12)
    assert (row["n_replicates"], row["n_images"]) == (3, 19)
    assert one(frame, "b", "a", testset="Set5")["n_images"] == 5
    # SSIM is higher-is-better as well; the opposite comparison reads "worse".
    assert one(frame, "b", "a", metric="ssim")["reading"] == "better"
    contrast = verdict_frame(per_image, spec(contrasts=(("a", "b"),)))
    assert one(contrast, "a", "b")["reading"] == "worse"


def test_identical_methods_are_not_resolved():
    per_image = metrics({"a": 0.0, "b": 0.0}, same_noise=("a", "b"))
    row = one(verdict_frame(per_image, spec()), "b", "a")
    assert row["diff"] == 0 and row["ci_low"] <= 0 <= row["ci_high"]
    assert row["reading"] == "not resolved"


def test_more_noise_gives_a_wider_interval():
    def width(noise: float) -> float:
        row = one(verdict_frame(metrics({"a": 0.0, "b": 0.3}, noise=noise, seed=1), spec()), "b", "a")
        return row["ci_high"] - row["ci_low"]

    assert width(0.5) > 3 * width(0.05)


def test_one_replicate_resamples_images_only():
    frame = verdict_frame(metrics({"a": 0.0, "b": 0.3}, replicates=1), spec())
    row = one(frame, "b", "a")
    assert row["n_replicates"] == 1 and row["ci_low"] < row["diff"] < row["ci_high"]
    assert row["reading"] == "better"


def test_self_rows_give_every_mean():
    per_image = metrics({"a": 0.0, "b": 0.3, "c": -0.1})
    frame = verdict_frame(per_image, spec(("b",), whole="c"))
    for method in ("a", "b", "c"):  # the reference and whole are read although not listed
        row = one(frame, method, "")
        assert np.isnan(row["diff"]) and row["reading"] == "" and row["n_replicates"] == 3
        assert row["mean"] == pytest.approx(per_image.loc[per_image["method"] == method, "psnr"].mean())
    # The positive control exists although whole is not among the listed methods.
    assert one(frame, "c", "a")["reading"] == "worse"
    pairs = set(zip(frame["method"], frame["versus"]))
    assert pairs == {("a", ""), ("b", ""), ("c", ""), ("b", "a"), ("b", "c"), ("c", "a")}
    assert set(frame["testset"]) == {"Set5", "Set14", ALL}


def test_same_seed_same_frame_and_row_order_does_not_matter():
    per_image = metrics({"a": 0.0, "b": 0.1, "c": 0.2}, noise=0.3)
    first = verdict_frame(per_image, spec(("a", "b", "c")))
    pd.testing.assert_frame_equal(first, verdict_frame(per_image, spec(("a", "b", "c"))))
    shuffled = per_image.sample(frac=1, random_state=4).reset_index(drop=True)
    other = verdict_frame(shuffled, spec(("c", "b"), contrasts=(("c", "b"),)))
    for method, versus in (("b", "a"), ("c", "a")):
        for testset in (ALL, "Set5"):
            x, y = one(first, method, versus, testset=testset), one(other, method, versus, testset=testset)
            assert (x["diff"], x["ci_low"], x["ci_high"]) == (y["diff"], y["ci_low"], y["ci_high"])
    other_seed = one(verdict_frame(per_image, spec(("a", "b"), seed=1)), "b", "a")
    assert other_seed["ci_low"] != one(first, "b", "a")["ci_low"]


def test_only_shared_replicates_are_paired():
    per_image = metrics({"a": 0.0, "b": 0.3}, replicates={"a": [1, 2, 3], "b": [2, 3, 4]})
    frame = verdict_frame(per_image, spec())
    row = one(frame, "b", "a")
    assert row["n_replicates"] == 2
    shared = per_image[per_image["replicate"].isin([2, 3])]
    pivot = shared.pivot_table(index=["replicate", "testset", "image"], columns="method", values="psnr")
    assert row["diff"] == pytest.approx((pivot["b"] - pivot["a"]).mean(), rel=1e-12)
    # Means use all of a method's own replicates.
    assert row["mean"] == pytest.approx(per_image.loc[per_image["method"] == "b", "psnr"].mean())
    assert one(frame, "b", "")["n_replicates"] == 3

    disjoint = metrics({"a": 0.0, "b": 0.3}, replicates={"a": [1, 2], "b": [3, 4]})
    with pytest.raises(ValueError, match=r"'b' and 'a' share no replicate"):
        verdict_frame(disjoint, spec())


def test_different_image_sets_raise():
    per_image = metrics({"a": 0.0, "b": 0.3})
    renamed = per_image.copy()
    renamed.loc[(renamed["method"] == "b") & (renamed["image"] == "img002"), "image"] = "other"
    with pytest.raises(ValueError, match=r"'b' and 'a', model 'edsr', testset 'Set5': different image sets"):
        verdict_frame(renamed, spec())
    dropped = per_image[~((per_image["method"] == "b") & (per_image["image"] == "img003")
                          & (per_image["testset"] == "Set14"))]
    with pytest.raises(ValueError, match="different image sets"):
        verdict_frame(dropped, spec())
    # Within a method, every replicate must have the same images.
    holed = per_image.drop(per_image.index[(per_image["method"] == "a") & (per_image["replicate"] == 2)][:1])
    with pytest.raises(ValueError, match=r"method 'a' model 'edsr' testset 'Set5': replicate 2 lacks 1"):
        verdict_frame(holed, spec())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="ssim"), "missing column"),
        (lambda f: f[f["method"] != "b"], "method 'b'"),
        (lambda f: f[f["testset"] != "Set14"], "test set 'Set14'"),
        (lambda f: f.assign(psnr=f["psnr"].where(f.index != 7, np.nan)), "non-finite psnr"),
        (lambda f: f.assign(ssim=f["ssim"].where(f.index != 7, np.inf)), "non-finite ssim"),
        (lambda f: pd.concat([f, f.iloc[:1]]), "more than one row"),
        (lambda f: f.assign(replicate=f["replicate"] + 0.5), "not an integer"),
        (lambda f: f[~((f["method"] == "b") & (f["testset"] == "Set5"))], "method 'b' model 'edsr' testset 'Set5'"),
    ],
)
def test_bad_input_raises_one_line(change, message):
    with pytest.raises(ValueError, match=message) as error:
        verdict_frame(change(metrics({"a": 0.0, "b": 0.3})), spec())
    assert "\n" not in str(error.value)


def test_bad_spec_raises():
    with pytest.raises(ValueError, match="level"):
        spec(level=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        spec(n_boot=0)
    with pytest.raises(ValueError, match="whole and reference"):
        spec(whole="a")
    with pytest.raises(ValueError, match="itself"):
        spec(contrasts=(("b", "b"),))
    with pytest.raises(ValueError, match="pooled"):
        VerdictSpec(methods=("a",), models=MODELS, testsets=("all",), reference="a", whole=None)


# ---------------------------------------------------------------- Markdown and files


def test_warning_comes_first_when_the_positive_control_fails():
    per_image = metrics({"random": 0.0, "whole": 0.0, "idc": 0.3}, same_noise=("random", "whole"))
    labels = {"idc": "IDC"}
    verdict = spec(("random", "idc", "whole"), reference="random", whole="whole", labels=labels, title="Pilot")
    markdown = render_verdict_markdown(verdict_frame(per_image, verdict), verdict)
    lines = markdown.splitlines()
    assert lines[0].startswith("> **This setting cannot resolve differences in training data:** the positive "
                               "control Whole - Random is 0.000 dB [0.000, 0.000] (edsr), an interval that contains 0.")
    assert lines[0].endswith("Read no difference below as a result.")
    assert "**Pilot**" in lines[1:4]
    assert "Positive control (edsr): Whole - Random = 0.000 dB [0.000, 0.000], not resolved: the control fails." in lines


def test_no_warning_when_whole_is_clearly_better():
    per_image = metrics({"random": 0.0, "whole": 1.0, "idc": 0.3, "bad": -0.3, "same": 0.0},
                        same_noise=("random", "same"))
    verdict = spec(("idc", "bad", "same"), reference="random", whole="whole", contrasts=(("idc", "bad"),),
                   labels={"idc": "IDC", "bad": "Bad", "same": "Same"}, title="Pilot", n_boot=400, seed=3)
    markdown = render_verdict_markdown(verdict_frame(per_image, verdict), verdict)
    lines = markdown.splitlines()
    assert lines[0] == "**Pilot**"
    assert "cannot resolve" not in markdown
    assert any(line.startswith("Positive control (edsr): Whole - Random = +") and line.endswith("], resolved: the control passes.")
               for line in lines)
    assert any(line.startswith("- IDC (edsr): better than Random by 0.2") and "dB [+0." in line for line in lines)
    assert any(line.startswith("- Bad (edsr): worse than Random by 0.3") and "dB [-0." in line for line in lines)
    assert "- Same (edsr): not resolved against Random: 0.000 dB [0.000, 0.000]." in lines
    assert any(line.startswith("- IDC (edsr): better than Bad by 0.6") for line in lines)
    assert "| Method | All PSNR | All SSIM | Set5 PSNR | Set5 SSIM | Set14 PSNR | Set14 SSIM | n_rep |" in lines
    assert "95% percentile intervals of a hierarchical bootstrap" in markdown and "400 draws, seed 3" in markdown


def test_make_verdict_writes_csv_and_markdown(tmp_path):
    per_image = metrics({"random": 0.0, "whole": 0.5, "idc": 0.2}, models=("edsr", "swinir"))
    verdict = spec(("idc",), reference="random", whole="whole", models=("edsr", "swinir"), n_boot=300)
    paths = make_verdict(per_image, verdict, tmp_path / "out" / "verdict")
    assert set(paths) == {"csv", "md"}
    assert paths["csv"] == tmp_path / "out" / "verdict.csv" and paths["md"].name == "verdict.md"
    back = pd.read_csv(paths["csv"], keep_default_na=False, na_values=[""])
    assert tuple(back.columns) == VERDICT_COLUMNS
    assert len(back) == len(verdict_frame(per_image, verdict))
    markdown = paths["md"].read_text()
    assert "Positive control (swinir)" in markdown
    # The Markdown can be rendered again from the CSV alone.
    assert render_verdict_markdown(back, verdict) == markdown


def test_make_verdict_from_metrics_files_and_a_spec_mapping(tmp_path):
    from idc.report.verdict import make_verdict_from_entries

    per_image = metrics({"random": 0.0, "whole": 0.5, "idc": 0.2}, replicates={"random": [1, 2], "whole": [1, 2],
                                                                               "idc": [2, 3]})
    entries = []
    for (method, replicate), rows in per_image.groupby(["method", "replicate"]):
        path = tmp_path / f"{method}-{replicate}.csv"
        rows[["testset", "image", "psnr", "ssim"]].to_csv(path, index=False)
        entries.append({"method": method, "model": "edsr", "replicate": int(replicate), "path": str(path)})
    mapping = {"methods": ["random", "idc", "whole"], "models": ["edsr"], "testsets": list(SIZES),
               "reference": "random", "whole": "whole", "contrasts": [["idc", "whole"]], "labels": None,
               "n_boot": 200, "level": 0.9, "seed": 11, "title": "From files"}
    paths = make_verdict_from_entries(entries, mapping, tmp_path / "verdict")
    from_files = pd.read_csv(paths["csv"], keep_default_na=False, na_values=[""])
    assert one(from_files, "idc", "random")["n_replicates"] == 1
    assert one(from_files, "whole", "random")["reading"] == "better"
    expected = verdict_frame(per_image, VerdictSpec.from_mapping(mapping))
    assert np.allclose(from_files["ci_low"], expected["ci_low"], equal_nan=True, rtol=1e-9)
    with pytest.raises(ValueError, match="unknown key 'bootstrap'"):
        VerdictSpec.from_mapping({**mapping, "bootstrap": 10})


def test_a_control_resolved_in_the_wrong_direction_fails_too():
    """Whole clearly below the reference: resolved, but the set-up cannot rank training sets."""
    import numpy as np
    import pandas as pd

    from idc.report.verdict import VerdictSpec, render_verdict_markdown, verdict_frame

    rng = np.random.default_rng(3)
    rows = []
    for method, shift in (("whole", -1.0), ("random", 0.0)):
        for rep in range(3):
            for i in range(30):
                rows.append({"method": method, "replicate": rep, "model": "edsr", "testset": "T", "image": f"i{i}",
                             "psnr": 28.0 + i * 0.01 + shift + rng.normal(0, 0.05), "ssim": 0.8})
    spec = VerdictSpec(methods=("whole", "random"), models=("edsr",), testsets=("T",), reference="random",
                       whole="whole", n_boot=500)
    text = render_verdict_markdown(verdict_frame(pd.DataFrame(rows), spec), spec)
    assert text.startswith("> **This setting cannot resolve differences in training data:**")
    assert "resolved in the wrong direction: the control fails." in text


# ---------------------------------------------------------------- DD-Ranking's IOR and HLR


def test_ior_and_hlr_are_the_differences_to_the_reference_and_to_the_whole():
    """IOR = method - reference and HLR = whole - method (its interval mirrored), on the method's
    own row; the sd over replicates is that of each replicate's mean difference."""
    per_image = metrics({"a": 0.0, "b": 0.3, "w": 0.5})
    frame = verdict_frame(per_image, spec(("b",), whole="w"))
    own, to_ref, to_whole = one(frame, "b", ""), one(frame, "b", "a"), one(frame, "b", "w")
    assert (own["ior"], own["ior_low"], own["ior_high"]) == (to_ref["diff"], to_ref["ci_low"], to_ref["ci_high"])
    assert (own["hlr"], own["hlr_low"], own["hlr_high"]) == (-to_whole["diff"], -to_whole["ci_high"],
                                                              -to_whole["ci_low"])
    assert own["ior_low"] <= 0.3 <= own["ior_high"] and own["hlr_low"] <= 0.2 <= own["hlr_high"]
    pivot = per_image.pivot_table(index=["replicate", "testset", "image"], columns="method", values="psnr")
    by_replicate = (pivot["b"] - pivot["a"]).groupby(level="replicate").mean()
    assert to_ref["sd_replicates"] == pytest.approx(by_replicate.std(ddof=1), rel=1e-9)
    # Neither the reference nor the whole has an IOR or HLR of its own.
    assert np.isnan(one(frame, "a", "")["ior"]) and np.isnan(one(frame, "w", "")["hlr"])
    text = render_verdict_markdown(frame, spec(("b",), whole="w"))
    assert "### Improvement over a and gap to w (edsr)" in text
    pooled = next(line for line in text.splitlines() if line.startswith("| b | All |"))
    assert f"{own['ior']:+.3f} [{own['ior_low']:+.3f}, {own['ior_high']:+.3f}] ± {to_ref['sd_replicates']:.3f}" in pooled


def test_no_whole_no_hlr_and_one_replicate_no_sd():
    frame = verdict_frame(metrics({"a": 0.0, "b": 0.3}, replicates=1), spec())
    assert np.isnan(one(frame, "b", "")["hlr"]) and np.isnan(one(frame, "b", "a")["sd_replicates"])
    assert "Improvement over" not in render_verdict_markdown(frame, spec())
