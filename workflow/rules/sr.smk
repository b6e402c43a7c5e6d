# SR networks (idc.sr): the teachers, trained on the whole real patch store or converted from
# released weights (the condensation's feature extractor and the up-samplers of the synthetic LR
# patches); then every evaluated SR network, trained on every dataset and tested on the benchmarks.


# ---------------------------------------------------------------- teachers


rule train_teacher:
    input:
        store=STORE,
        val=VALIDATION_DIR,
    output:
        model=f"{RESULTS}/teachers/{{teacher}}/model.safetensors",
        trajectory=f"{RESULTS}/teachers/{{teacher}}/trajectory.csv",
    log:
        f"{RESULTS}/logs/train_teacher/{{teacher}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_teacher/{{teacher}}.tsv"
    wildcard_constraints:
        teacher=alternatives(TRAINED_TEACHERS),
    # Teachers gate the condensation, the relabelling and every IDC row: run them first.
    priority: 20
    conda:
        "../../envs/idc.yaml"
    threads: lambda wc: cpus(config["teachers"][wc.teacher]["resources"]["cpus"])
    resources:
        **{
            k: (lambda wc, k=k: job_resources(config["teachers"][wc.teacher])[k])
            for k in ("gpu", "cpus_per_task", "mem_mb", "runtime")
        },
        # Data-parallel training processes (torchrun) of the job; not a param: any rank count
        # gives the same training, so changing it reruns nothing.
        ranks=lambda wc: job_ranks(config["teachers"][wc.teacher]["resources"]),
    params:
        spec=lambda wc: network_spec(config["teachers"][wc.teacher]),
        seed=lambda wc: derived_seed(1, wc.teacher),
        test=validation_settings(config["test"]),
        resume=lambda wc: f"{RESUME}/teachers/{wc.teacher}",
        impl=IMPL["train"],
    script:
        "../scripts/train_sr.py"


# A teacher with `weights` in the configuration: released weights converted instead of training.
rule import_teacher:
    input:
        weights=lambda wc: config["teachers"][wc.teacher]["weights"],
        val=VALIDATION_DIR,
    output:
        model=f"{RESULTS}/teachers/{{teacher}}/model.safetensors",
        metrics=f"{RESULTS}/teachers/{{teacher}}/validation.csv",
    log:
        f"{RESULTS}/logs/import_teacher/{{teacher}}.log",
    wildcard_constraints:
        teacher=alternatives(IMPORTED_TEACHERS),
    conda:
        "../../envs/idc.yaml"
    resources:
        gpu=lambda wc: inference_gpus(config["teachers"][wc.teacher]["resources"]),
        mem_mb=lambda wc: job_resources(config["teachers"][wc.teacher])["mem_mb"],
        runtime=30,
    params:
        spec=lambda wc: network_build(config["teachers"][wc.teacher]),
        val_name=config["data"]["validation"],
        scale=config["scale"],
        test=validation_settings(config["test"]),
        impl=IMPL["test"],
    script:
        "../scripts/import_teacher.py"


# ---------------------------------------------------------------- evaluated SR networks


rule train_sr:
    input:
        unpack(get_sr_train_inputs),
    output:
        model=f"{RESULTS}/sr/{{dataset}}/{{model}}/model.safetensors",
        trajectory=f"{RESULTS}/sr/{{dataset}}/{{model}}/trajectory.csv",
    log:
        f"{RESULTS}/logs/train_sr/{{dataset}}/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_sr/{{dataset}}/{{model}}.tsv"
    conda:
        "../../envs/idc.yaml"
    threads: lambda wc: cpus(config["models"][wc.model]["resources"]["cpus"])
    resources:
        **{
            k: (lambda wc, k=k: job_resources(config["models"][wc.model])[k])
            for k in ("gpu", "cpus_per_task", "mem_mb", "runtime")
        },
        # Data-parallel training processes (torchrun) of the job; not a param: any rank count
        # gives the same training, so changing it reruns nothing.
        ranks=lambda wc: job_ranks(config["models"][wc.model]["resources"]),
    params:
        spec=lambda wc: network_spec(config["models"][wc.model]),
        seed=lambda wc: derived_seed(4, DATASETS[wc.dataset]["replicate"], wc.model),
        test=validation_settings(config["test"]),
        resume=lambda wc: f"{RESUME}/sr/{wc.dataset}/{wc.model}",
        impl=IMPL["train"],
    script:
        "../scripts/train_sr.py"


rule test_sr:
    input:
        model=rules.train_sr.output.model,
        testsets=[PATHS.testset(name) for name in TESTSETS],
    output:
        metrics=f"{RESULTS}/sr/{{dataset}}/{{model}}/metrics.csv",
    log:
        f"{RESULTS}/logs/test_sr/{{dataset}}/{{model}}.log",
    conda:
        "../../envs/idc.yaml"
    resources:
        # Testing is inference on whole images: one GPU whatever the training used.
        gpu=lambda wc: test_gpus(config, wc.model),
        cpus_per_task=cpus(4),
        mem_mb=mem(16000),
        runtime=60,
    params:
        names=TESTSETS,
        test=canonical(config["test"]),
        scale=SCALE,
        impl=IMPL["test"],
    script:
        "../scripts/test_sr.py"
