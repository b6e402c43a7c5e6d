"""EDSR against the BasicSR fixture; parameter counts; save/load and official-checkpoint loading."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from idc.archs import MODEL_PRESETS, build_model, load_model, load_official_weights, save_model


def _split_fixture(path):
    tensors = load_file(str(path))
    state = {k: v for k, v in tensors.items() if not k.startswith("__")}
    extra = {k: v for k, v in tensors.items() if k.startswith("__")}
    return state, extra


def _count_on_meta(name: str) -> int:
    with torch.device("meta"):
        model = build_model(name)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("preset, expected", [("edsr_baseline_x4", 1_517_571), ("edsr_x4", 43_089_923)])
def test_edsr_parameter_counts(preset: str, expected: int) -> None:
    assert _count_on_meta(preset) == expected


def test_edsr_matches_basicsr_fixture(fixtures_dir) -> None:
    state, extra = _split_fixture(fixtures_dir / "edsr_baseline_x4.safetensors")
    model = build_model("edsr_baseline_x4")
    model.load_state_dict(state, strict=True)
    model.eval()
    x = extra["__input__"]
    with torch.no_grad():
        out = model(x)
        feats = model.features(x)
        first = model.conv_first(model._normalise(x))
    assert out.shape == (1, 3, 96, 96)
    assert (out - extra["__output__"]).abs().max().item() < 1e-5
    assert (feats - extra["__features__"]).abs().max().item() < 1e-3
    assert (first - extra["__conv_first__"]).abs().max().item() < 1e-3


def test_build_model_rejects_unknown_names_and_arguments() -> None:
    with pytest.raises(ValueError, match="unknown model 'edsrr'"):
        build_model("edsrr")
    with pytest.raises(TypeError, match="num_feats"):
        build_model("edsr", num_feats=8)


def test_preset_overrides() -> None:
    model = build_model("edsr_baseline_x4", num_block=2, upscale=2)
    assert len(model.body) == 2
    assert model(torch.rand(1, 3, 5, 7)).shape == (1, 3, 10, 14)
    assert MODEL_PRESETS["edsr_baseline_x4"]["kwargs"]["num_block"] == 16  # preset left untouched


def test_save_load_round_trip(tmp_path) -> None:
    kwargs = dict(num_feat=8, num_block=2, upscale=3)
    torch.manual_seed(0)
    model = build_model("edsr", **kwargs).eval()
    path = save_model(tmp_path / "sub" / "teacher.safetensors", model, "edsr", kwargs)
    assert [p.name for p in path.parent.iterdir()] == ["teacher.safetensors"]  # no temp left behind
    again = load_model(path)
    x = torch.rand(2, 3, 6, 5)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert not again.training


def test_load_model_errors_name_the_file(tmp_path) -> None:
    missing = tmp_path / "absent.safetensors"
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        load_model(missing)
    model = build_model("edsr", num_feat=8, num_block=1)
    path = save_model(tmp_path / "m.safetensors", model, "edsr", dict(num_feat=8, num_block=1))
    data = path.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.safetensors"):
        load_model(truncated)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="garbage.safetensors"):
        load_model(garbage)
    with pytest.raises(ValueError, match="not an architecture"):
        save_model(tmp_path / "x.safetensors", model, "edsr_baseline_x4", {})
    with pytest.raises(ValueError, match="JSON"):
        save_model(tmp_path / "x.safetensors", model, "edsr", {"rgb_mean": torch.zeros(3)})
    assert not (tmp_path / "x.safetensors").exists()


def test_official_checkpoint_dicts_load(tmp_path, fixtures_dir) -> None:
    state, extra = _split_fixture(fixtures_dir / "edsr_baseline_x4.safetensors")
    ckpt = tmp_path / "EDSR_Mx4.pth"
    # A BasicSR release: both keys; params_ema is taken by default, params on request.
    perturbed = {k: v + 1.0 for k, v in state.items()}
    torch.save({"params": perturbed, "params_ema": state}, ckpt)
    model = load_official_weights(build_model("edsr_baseline_x4").eval(), ckpt)
    with torch.no_grad():
        assert (model(extra["__input__"]) - extra["__output__"]).abs().max().item() < 1e-5
    other = load_official_weights(build_model("edsr_baseline_x4"), ckpt, param_key="params")
    assert torch.equal(other.conv_first.bias, perturbed["conv_first.bias"])
    # A plain state dict with a DataParallel prefix.
    plain = tmp_path / "plain.pt"
    torch.save({f"module.{k}": v for k, v in state.items()}, plain)
    load_official_weights(build_model("edsr_baseline_x4"), plain)
    # Wrong structure: clear error listing what does not fit.
    with pytest.raises(ValueError, match="missing"):
        load_official_weights(build_model("edsr_baseline_x4", num_block=17), ckpt)


def test_checkpoint_loading_refuses_pickled_code(tmp_path) -> None:
    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pth"
    torch.save({"params": {"w": torch.zeros(1)}, "x": Payload()}, path)
    with pytest.raises(ValueError, match="weights_only"):
        load_official_weights(build_model("edsr", num_feat=8, num_block=1), path)


def test_cli_params_import_and_info(tmp_path, fixtures_dir, capsys) -> None:
    from idc.cli import main

    assert main(["archs", "params", "edsr_baseline_x4", "edsr_x4"]) == 0
    out = capsys.readouterr().out
    assert "1,517,571" in out and "43,089,923" in out
    state, extra = _split_fixture(fixtures_dir / "edsr_baseline_x4.safetensors")
    released = tmp_path / "EDSR_Mx4_official.pth"
    torch.save({"params": state}, released)
    dst = tmp_path / "teacher.safetensors"
    assert main(["archs", "import-weights", "--model", "edsr_baseline_x4", str(released), str(dst)]) == 0
    with torch.no_grad():
        assert (load_model(dst)(extra["__input__"]) - extra["__output__"]).abs().max().item() < 1e-5
    assert main(["archs", "info", str(dst)]) == 0
    assert '"arch": "edsr"' in capsys.readouterr().out
    # Wrong preset for these weights: one-line error, exit code 1.
    assert main(["archs", "import-weights", "--model", "edsr_x4", str(released), str(tmp_path / "x.safetensors")]) == 1
    assert "do not fit EDSR" in capsys.readouterr().err
    assert not (tmp_path / "x.safetensors").exists()
