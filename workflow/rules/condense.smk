# IDC (idc.condense): one condensation job per training image (GPU), then HR up-sampling of the
# synthetic LR patches with an up-sampler teacher and assembly into one patch store per dataset.


# `condense.pack: 1`: one job per image. `pack: k`: one job condenses k images in one loop
# (condense_pack), and a local job copies each image's files to the same paths (unpack_condensed),
# so everything downstream reads one layout whatever the packing.
if CONDENSE_PACK == 1:

    rule condense_image:
        input:
            store=STORE,
            extractor=PATHS.teacher(config["condense"]["extractor"]),
        output:
            synthetic=f"{RESULTS}/condense/{{ckey}}/{{image}}.npy",
            log_json=f"{RESULTS}/condense/{{ckey}}/{{image}}.json",
            snapshots=f"{RESULTS}/condense/{{ckey}}/{{image}}.snapshots.npz",
        log:
            f"{RESULTS}/logs/condense_image/{{ckey}}/{{image}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/condense_image/{{ckey}}/{{image}}.tsv"
        # Before the SR trainings that do not wait on them, so the IDC rows are not last in line.
        priority: 10
        group:
            "condense"
        conda:
            "../../envs/idc.yaml"
        threads: cpus(config["condense"]["resources"]["cpus"])
        resources:
            **job_resources(config["condense"]),
        params:
            cfg=get_condense_params,
            image_id=lambda wc: IMAGE_INDEX[wc.image],
            seed=lambda wc: condense_seed(wc.ckey, wc.image),
            resume=lambda wc: f"{RESUME}/condense/{wc.ckey}/{wc.image}.ckpt",
            impl=IMPL["condense"],
        script:
            "../scripts/condense_image.py"

else:

    rule condense_pack:
        input:
            store=STORE,
            extractor=PATHS.teacher(config["condense"]["extractor"]),
        output:
            folder=directory(PATHS.condense_pack("{ckey}", "{pack}")),
        log:
            f"{RESULTS}/logs/condense_pack/{{ckey}}/{{pack}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/condense_pack/{{ckey}}/{{pack}}.tsv"
        priority: 10
        group:
            "condense"
        conda:
            "../../envs/idc.yaml"
        threads: cpus(config["condense"]["resources"]["cpus"])
        resources:
            **packed_resources(config["condense"], CONDENSE_PACK),
        params:
            cfg=get_condense_params,
            images=get_pack_images,
            image_ids=get_pack_image_ids,
            seeds=get_pack_seeds,
            resume=lambda wc: f"{RESUME}/condense/{wc.ckey}/packs/{wc.pack}",
            impl=IMPL["condense"],
        script:
            "../scripts/condense_pack.py"

    rule unpack_condensed:
        input:
            folder=get_image_pack,
        output:
            synthetic=f"{RESULTS}/condense/{{ckey}}/{{image}}.npy",
            log_json=f"{RESULTS}/condense/{{ckey}}/{{image}}.json",
            snapshots=f"{RESULTS}/condense/{{ckey}}/{{image}}.snapshots.npz",
        log:
            f"{RESULTS}/logs/unpack_condensed/{{ckey}}/{{image}}.log",
        localrule: True
        script:
            "../scripts/unpack_condensed.py"


rule upsample_condensed:
    input:
        synthetic=get_condensed_patches,
        store=STORE,
        upsampler=get_upsampler,
    output:
        store=f"{RESULTS}/datasets/{{dataset}}.h5",
        memorisation=f"{RESULTS}/datasets/{{dataset}}.memorisation.json",
    log:
        f"{RESULTS}/logs/upsample_condensed/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/upsample_condensed/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=alternatives(IDC_DATASETS),
    conda:
        "../../envs/idc.yaml"
    resources:
        # Inference: one GPU even for a teacher trained on several.
        gpu=lambda wc: upsampler_gpus(config, wc.dataset),
        cpus_per_task=cpus(4),
        mem_mb=mem(16000),
        runtime=120,
    params:
        image_ids=get_condensed_image_ids,
        seed=config["seed"],
        impl=IMPL["upsample"],
    script:
        "../scripts/upsample_condensed.py"


# The teacher-relabelling control: a real-patch dataset (`hr_source: teacher`) whose HR side is
# the up-sampler's output on its real LR patches, made by the function that makes IDC's HR side.
rule relabel_dataset:
    input:
        unpack(get_relabel_inputs),
    output:
        store=f"{RESULTS}/datasets/{{dataset}}.h5",
    log:
        f"{RESULTS}/logs/relabel_dataset/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/relabel_dataset/{{dataset}}.tsv"
    wildcard_constraints:
        dataset=alternatives(RELABELLED_DATASETS),
    conda:
        "../../envs/idc.yaml"
    resources:
        gpu=lambda wc: upsampler_gpus(config, wc.dataset),
        cpus_per_task=cpus(4),
        mem_mb=mem(16000),
        runtime=120,
    params:
        seed=config["seed"],
        impl=IMPL["upsample"],
    script:
        "../scripts/relabel_dataset.py"
