# Datasets as products: any dataset of the run exported as paired PNG folders (BasicSR layout)
# with a dataset card, and paired folders made elsewhere imported as a dataset (method folder).


rule export_dataset:
    input:
        unpack(export_inputs),
    output:
        folder=directory(f"{RESULTS}/export/{{dataset}}"),
    log:
        f"{RESULTS}/logs/export_dataset/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/export_dataset/{{dataset}}.tsv"
    conda:
        "../../envs/idc.yaml"
    resources:
        gpu=0,
        cpus_per_task=cpus(1),
        mem_mb=mem(4000),
        runtime=240,
    params:
        card=export_card,
        scale=SCALE,
        impl=IMPL["export"],
    script:
        "../scripts/export_dataset.py"


rule import_folder:
    input:
        unpack(folder_inputs),
    output:
        store=f"{RESULTS}/datasets/{{dataset}}.h5",
    log:
        f"{RESULTS}/logs/import_folder/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/import_folder/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=_alternatives(FOLDER_DATASETS),
    conda:
        "../../envs/idc.yaml"
    threads: cpus(config["data"]["crop"]["workers"])
    resources:
        gpu=0,
        cpus_per_task=cpus(config["data"]["crop"]["workers"]),
        mem_mb=mem(16000),
        runtime=240,
    params:
        crop=folder_crop,
        scale=SCALE,
        impl=IMPL["data"],
    script:
        "../scripts/import_folder.py"
