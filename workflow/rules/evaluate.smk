# Train every evaluated SR network on every dataset, then test it on the benchmark sets.


rule train_sr:
    input:
        unpack(sr_train_inputs),
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
        spec=lambda wc: network_spec("models", wc.model),
        seed=lambda wc: derived_seed(4, DATASETS[wc.dataset]["replicate"], wc.model),
        test=canonical(
            {k: config["test"][k] for k in ("crop_border", "test_y_channel")}
        ),
        resume=lambda wc: f"{RESUME}/sr/{wc.dataset}/{wc.model}",
        impl=IMPL["train"],
    script:
        "../scripts/train_sr.py"


rule test_sr:
    input:
        model=rules.train_sr.output.model,
        testsets=[testset_dir(name) for name in testsets_in_use()],
    output:
        metrics=f"{RESULTS}/sr/{{dataset}}/{{model}}/metrics.csv",
    log:
        f"{RESULTS}/logs/test_sr/{{dataset}}/{{model}}.log",
    conda:
        "../../envs/idc.yaml"
    resources:
        # Testing is inference on whole images: one GPU whatever the training used.
        gpu=lambda wc: min(1, config["models"][wc.model]["resources"]["gpu"]),
        cpus_per_task=cpus(4),
        mem_mb=mem(16000),
        runtime=60,
    params:
        names=testsets_in_use(),
        test=canonical(config["test"]),
        scale=SCALE,
        impl=IMPL["test"],
    script:
        "../scripts/test_sr.py"
