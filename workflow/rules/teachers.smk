# Teacher networks trained on the whole real patch store: the condensation's feature extractor and
# the up-samplers of the synthetic LR patches.


rule train_teacher:
    input:
        store=STORE,
        val=validation_dir(),
    output:
        model=f"{RESULTS}/teachers/{{teacher}}/model.safetensors",
        trajectory=f"{RESULTS}/teachers/{{teacher}}/trajectory.csv",
    log:
        f"{RESULTS}/logs/train_teacher/{{teacher}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_teacher/{{teacher}}.tsv"
    wildcard_constraints:
        teacher=_alternatives(TRAINED_TEACHERS),
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
        spec=lambda wc: network_spec("teachers", wc.teacher),
        seed=lambda wc: derived_seed(1, wc.teacher),
        test=canonical(
            {k: config["test"][k] for k in ("crop_border", "test_y_channel")}
        ),
        resume=lambda wc: f"{RESUME}/teachers/{wc.teacher}",
        impl=IMPL["train"],
    script:
        "../scripts/train_sr.py"


# A teacher with `weights` in the configuration: released weights converted instead of training.
rule import_teacher:
    input:
        weights=lambda wc: config["teachers"][wc.teacher]["weights"],
        val=validation_dir(),
    output:
        model=f"{RESULTS}/teachers/{{teacher}}/model.safetensors",
        metrics=f"{RESULTS}/teachers/{{teacher}}/validation.csv",
    log:
        f"{RESULTS}/logs/import_teacher/{{teacher}}.log",
    wildcard_constraints:
        teacher=_alternatives(IMPORTED_TEACHERS),
    conda:
        "../../envs/idc.yaml"
    resources:
        gpu=lambda wc: min(1, job_resources(config["teachers"][wc.teacher])["gpu"]),
        mem_mb=lambda wc: job_resources(config["teachers"][wc.teacher])["mem_mb"],
        runtime=30,
    params:
        spec=lambda wc: canonical(
            {k: config["teachers"][wc.teacher][k] for k in ("arch", "kwargs")}
        ),
        val_name=config["data"]["validation"],
        scale=config["scale"],
        test=canonical(
            {k: config["test"][k] for k in ("crop_border", "test_y_channel")}
        ),
        impl=IMPL["test"],
    script:
        "../scripts/import_teacher.py"
