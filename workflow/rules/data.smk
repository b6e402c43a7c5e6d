# Data (idc.data): training images (DIV2K download, a local folder, or the embedded demo photos),
# benchmark test sets, the HDF5 patch store of HR/LR crops; and datasets as products: any dataset
# of the run exported as paired PNG folders (BasicSR layout) with a dataset card, and paired
# folders made elsewhere imported as a dataset (method folder).


localrules:
    download_div2k,
    prepare_testset,
    build_demo_images,
    make_table,
    make_verdict,
    plot_figures,


rule download_div2k:
    output:
        **DIV2K_OUTPUTS,
    log:
        f"{RESULTS}/logs/download_div2k.log",
    conda:
        "../../envs/idc.yaml"
    resources:
        gpu=0,
        cpus_per_task=cpus(1),
        mem_mb=mem(2000),
        runtime=240,
    params:
        url=TRAIN["div2k_url"],
    script:
        "../scripts/download_div2k.py"


rule build_demo_images:
    output:
        train=directory(f"{RESULTS}/data/demo/train/HR"),
        test=directory(f"{RESULTS}/data/demo/test/HR"),
    log:
        f"{RESULTS}/logs/build_demo_images.log",
    conda:
        "../../envs/idc.yaml"
    resources:
        gpu=0,
        cpus_per_task=cpus(1),
        mem_mb=mem(2000),
        runtime=10,
    params:
        max_side=TRAIN["demo_max_side"],
        impl=IMPL["data"],
    script:
        "../scripts/build_demo_images.py"


rule prepare_testset:
    input:
        unpack(get_testset_inputs),
    output:
        directory(f"{RESULTS}/data/testsets/{{testset}}"),
    log:
        f"{RESULTS}/logs/prepare_testset/{{testset}}.log",
    conda:
        "../../envs/idc.yaml"
    resources:
        gpu=0,
        cpus_per_task=cpus(1),
        mem_mb=mem(4000),
        runtime=30,
    params:
        scale=SCALE,
        cut=lambda wc: {
            k: config["data"]["testsets"][wc.testset][k] for k in ("skip", "images")
        },
        impl=IMPL["data"],
    script:
        "../scripts/prepare_testset.py"


rule crop_patches:
    input:
        hr=TRAINING.hr_dir,
        lr=TRAINING.lr_dir or [],
    output:
        store=STORE,
    log:
        f"{RESULTS}/logs/crop_patches.log",
    benchmark:
        f"{RESULTS}/benchmarks/crop_patches.tsv"
    conda:
        "../../envs/idc.yaml"
    threads: cpus(config["data"]["crop"]["workers"])
    resources:
        gpu=0,
        cpus_per_task=cpus(config["data"]["crop"]["workers"]),
        mem_mb=mem(16000),
        runtime=240,
    params:
        crop=crop_settings(config["data"]["crop"]),
        scale=SCALE,
        source=TRAIN["source"],
        images=TRAIN["images"],
        impl=IMPL["data"],
    script:
        "../scripts/crop_patches.py"


# ---------------------------------------------------------------- datasets exported and imported


rule export_dataset:
    input:
        unpack(get_export_inputs),
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
        card=get_export_card,
        scale=SCALE,
        impl=IMPL["export"],
    script:
        "../scripts/export_dataset.py"


rule import_folder:
    input:
        unpack(get_folder_inputs),
    output:
        store=f"{RESULTS}/datasets/{{dataset}}.h5",
    log:
        f"{RESULTS}/logs/import_folder/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/import_folder/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=alternatives(FOLDER_DATASETS),
    conda:
        "../../envs/idc.yaml"
    threads: cpus(config["data"]["crop"]["workers"])
    resources:
        gpu=0,
        cpus_per_task=cpus(config["data"]["crop"]["workers"]),
        mem_mb=mem(16000),
        runtime=240,
    params:
        crop=get_folder_crop,
        scale=SCALE,
        impl=IMPL["data"],
    script:
        "../scripts/import_folder.py"
