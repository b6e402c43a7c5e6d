# Selection baselines (idc.select) on the real LR patches (Random, Herding, K-Center Greedy, DCSR):
# an index array into the whole patch store per dataset.


rule select_baseline:
    input:
        unpack(get_selection_inputs),
    output:
        indices=f"{RESULTS}/datasets/{{dataset}}.idx.npy",
    log:
        f"{RESULTS}/logs/select_baseline/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/select_baseline/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=alternatives(SELECTION_DATASETS),
    conda:
        "../../envs/idc.yaml"
    resources:
        gpu=lambda wc: selection_gpus(config, wc.dataset),
        cpus_per_task=cpus(4),
        mem_mb=mem(32000),
        runtime=120,
    params:
        selection=get_selection_params,
        seed=lambda wc: derived_seed(
            3, DATASETS[wc.dataset]["replicate"], DATASETS[wc.dataset]["method"]
        ),
        impl=IMPL["select"],
    script:
        "../scripts/select_baseline.py"
