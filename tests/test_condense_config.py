"""CondenseConfig: paper defaults, named variants, validation, schedule."""

from __future__ import annotations

import pytest

from idc.condense.config import VARIANTS, CondenseConfig


def test_paper_defaults() -> None:
    c = CondenseConfig()
    assert (c.ratio, c.steps, c.warmup, c.lr, c.milestones, c.gamma) == (0.1, 20000, 4000, 1e-2, [15000, 17000, 19000], 0.1)
    assert (c.alpha, c.beta, c.w_ins, c.w_group, c.w_pair) == (0.2, 0.8, 300, 300, 300000)
    assert (c.num_freqs, c.kernel, c.channels, c.patch, c.groups) == (1024, 7, 256, 4, 16)
    assert (c.assign_interval, c.assign_times, c.feature_layer) == (400, 25, "last")
    assert c.local_feature and c.unfold and c.use_ins and c.use_group and c.use_pair
    assert c.feature_transform == "rlff"


def test_schedule_follows_the_paper() -> None:
    c = CondenseConfig()
    steps = c.assignment_steps()
    assert steps[0] == 4000 and steps[1] - steps[0] == 400
    assert len(steps) == 26 and steps[-1] == 4000 + 25 * 400  # 25 grouping events + final pairing
    assert c.lr_at(0) == 1e-2 and c.lr_at(14999) == 1e-2
    assert c.lr_at(15000) == pytest.approx(1e-3) and c.lr_at(17000) == pytest.approx(1e-4)
    assert c.lr_at(19999) == pytest.approx(1e-5)
    assert CondenseConfig(use_pair=False).assignment_steps()[-1] == 4000 + 24 * 400
    assert CondenseConfig.from_dict({}, variant="v3").assignment_steps() == []


def test_n_synthetic_of_one_instance_follows_the_budget_rule() -> None:
    c = CondenseConfig()
    assert c.budget == "equal"
    # alone, an instance is the whole set: floor(r N), as the baselines count
    assert c.n_synthetic(151) == 15 and c.n_synthetic(150) == 15 and c.n_synthetic(10) == 1
    with pytest.raises(ValueError, match="keeps no patch"):
        c.n_synthetic(3)
    old = CondenseConfig(budget="ceil_per_image")
    assert old.n_synthetic(151) == 16 and old.n_synthetic(150) == 15 and old.n_synthetic(3) == 1
    # floor(0.1 x 310) = 31: floors 15 + 15 + 0, the leftover patch to the largest fraction (0.9)
    assert c.synthetic_counts([151, 150, 9]) == [15, 15, 1]
    assert old.synthetic_counts([151, 150, 9]) == [16, 15, 1]
    with pytest.raises(ValueError, match="budget='fair'"):
        CondenseConfig(budget="fair")


def test_variants_cover_the_tables_and_build() -> None:
    expected = ({"idc", "literal", "balanced", "fresh", "start"} | {f"v{i}" for i in range(1, 8)} | {f"a{i}" for i in range(12)}
                | {"x1", "x2", "x3"})
    assert set(VARIANTS) == expected
    for name in VARIANTS:
        CondenseConfig.from_dict({}, variant=name)
    assert CondenseConfig.from_dict({}, variant="a10").w_pair == 3_000_000
    assert CondenseConfig.from_dict({}, variant="v7").use_ins is False
    assert CondenseConfig.from_dict({}, variant="x2").feature_transform == "dct"
    assert CondenseConfig.from_dict({}, variant="literal").init == "random" and CondenseConfig().init == "real"
    assert CondenseConfig.from_dict({}, variant="balanced").w_pair == 3000.0
    assert CondenseConfig.from_dict({"steps": 800}, variant="start").steps == 0


def test_unknown_key_and_bad_values_are_named() -> None:
    with pytest.raises(ValueError, match="'ratoi'"):
        CondenseConfig.from_dict({"ratoi": 0.1})
    with pytest.raises(ValueError, match="variant 'v9'"):
        CondenseConfig.from_dict({}, variant="v9")
    for key, value in [("ratio", 0.0), ("ratio", 1.0), ("steps", -1), ("kernel", 4), ("feature_transform", "fft"),
                       ("groups", 0), ("lr", 0.0)]:
        with pytest.raises(ValueError, match=key):
            CondenseConfig.from_dict({key: value})
    with pytest.raises(ValueError, match="use_pair"):
        CondenseConfig(use_group=False, use_pair=True)


def test_round_trip() -> None:
    c = CondenseConfig.from_dict({"patch": 8}, variant="x3")
    assert CondenseConfig.from_dict(c.to_dict()) == c


def test_cli_and_workflow_resolve_settings_and_variant_alike(monkeypatch) -> None:
    """Defaults, then the run's settings, then the variant's own changes, through both entry
    points: {patch: 4} with variant a2 is p = 8 from `python -m idc condense-image` and from the
    workflow's resolution (and the variant's other settings are the run's)."""
    import idc.condense.stage as stage
    from idc.cli import main
    from idc.condense.config import resolve_condense_config

    given = {}
    monkeypatch.setattr(stage, "condense_image", lambda **kw: given.update(kw))
    assert main(["condense-image", "--store", "s.h5", "--image-id", "0", "--extractor", "e.safetensors",
                 "--out", "o.npy", "--log", "o.json", "--set", "patch=4", "--set", "kernel=5",
                 "--variant", "a2"]) == 0
    cli = stage.config_from_dict(given["cfg"]).to_dict()
    workflow = resolve_condense_config({"patch": 4, "kernel": 5}, variant="a2", ratio=0.1)
    assert cli["patch"] == workflow["patch"] == 8 and cli["kernel"] == workflow["kernel"] == 5
    assert cli == workflow


def test_no_variant_changes_an_execution_setting() -> None:
    """The workflow passes execution settings outside the rule's params, from the run's
    `condense.params`: that is only right while no variant sets one."""
    from idc.condense.config import EXECUTION_KEYS

    assert not [name for name, changes in VARIANTS.items() if EXECUTION_KEYS & set(changes)]


def test_result_settings_are_every_setting_but_the_execution_ones_in_field_order() -> None:
    from idc.condense.config import EXECUTION_KEYS, split_execution_settings

    cfg = CondenseConfig(steps=7, log_every=3, fast_path=False)
    result = cfg.result_settings()
    assert result == split_execution_settings(cfg.to_dict())[0]
    assert list(result) == [k for k in cfg.to_dict() if k not in EXECUTION_KEYS]
    assert result["steps"] == 7 and "log_every" not in result and "fast_path" not in result


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_job_condenses_with_the_settings_its_rule_resolved(variant) -> None:
    """What the condense_image job builds from its params and the run's config is the settings
    resolved while the workflow was parsed, execution settings included."""
    from idc.condense.config import job_settings, resolve_condense_settings

    run_params = {"steps": 30, "warmup": 6, "milestones": [20], "assign_interval": 2, "log_every": 7,
                  "checkpoint_every": 13, "fast_path": False, "fused_attention": True}
    resolved = resolve_condense_settings(run_params, variant=variant, ratio=0.05)
    settings = job_settings(resolved.result_settings(), run_params)
    assert settings == resolved
    # The params decide what is computed: a result setting of the config is not read a second time.
    assert job_settings(resolved.result_settings(), {**run_params, "steps": 99}).steps == resolved.steps


def test_a_job_without_condense_params_runs_with_the_default_execution_settings() -> None:
    from idc.condense.config import job_settings

    settings = job_settings(CondenseConfig(steps=5).result_settings(), None)
    assert settings == CondenseConfig(steps=5)
