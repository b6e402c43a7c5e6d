# What the rules share: the checked configuration, the run's constants, the input and params
# functions (get_*) and the wildcard constraints. What they compute lives in idc.workflow.

import sys
from functools import partial

from idc.resources import (
    inference_gpus,
    selection_gpus,
    test_gpus,
    upsampler_gpus,
)
from idc.runloop import derive_seed
from idc.sr.distributed import job_ranks
from idc.versions import IMPL_VERSIONS as IMPL
from idc.workflow import requests
from idc.workflow.data import div2k_folders, testset_sources, testsets_in_use
from idc.workflow.datasets import (
    CONDENSE_KEY,
    condensation_datasets,
    dataset_store,
    folder_crop,
    folder_imports,
    folder_inputs,
    parse_condense_key,
    relabel_inputs,
    relabelled_datasets,
    selection_datasets,
    selection_inputs,
)
from idc.workflow.export import export_card, export_inputs
from idc.workflow.paths import alternatives
from idc.workflow.run import load_run
from idc.workflow.slices import (
    canonical,
    crop_settings,
    network_build,
    network_spec,
    selection_params,
    validation_settings,
)
from idc.workflow.tables import (
    all_targets,
    figure_inputs,
    figure_pairs,
    paper_table_spec,
    paper_tables,
    table_entries,
    table_metrics,
    verdict_spec,
    verdict_tables,
)

try:
    RUN = load_run(config, workflow.configfiles)
except ValueError as err:
    # One line naming the key, before any job is planned.
    sys.exit(f"error: {err}")


PATHS = RUN.paths
RESULTS = PATHS.results
RESUME = PATHS.resume  # checkpoints of interrupted jobs; never a declared output
STORE = PATHS.store
TRAIN = config["data"]["trainset"]
SCALE = config["scale"]
TRAINING = RUN.training
IMAGES = TRAINING.stems
IMAGE_INDEX = TRAINING.index
CONDENSATIONS = RUN.condensations
CONDENSE_PACK = config["condense"]["pack"]  # images per condensation job
DIV2K_OUTPUTS = {k: directory(v) for k, v in div2k_folders(config, PATHS).items()}
TESTSETS = testsets_in_use(config)
VALIDATION_DIR = (
    PATHS.testset(config["data"]["validation"]) if config["data"]["validation"] else []
)

# Teachers the workflow trains, and those converted from released weights (`weights` set).
IMPORTED_TEACHERS = [k for k, t in config["teachers"].items() if t.get("weights")]
TRAINED_TEACHERS = [k for k in config["teachers"] if k not in IMPORTED_TEACHERS]

DATASETS = config["datasets"]
SELECTION_DATASETS = selection_datasets(DATASETS)
IDC_DATASETS = condensation_datasets(DATASETS)
FOLDER_DATASETS = folder_imports(DATASETS)
RELABELLED_DATASETS = relabelled_datasets(DATASETS)

VERDICT_TABLES = verdict_tables(config)
PAPER_TABLES = paper_tables(config)
ALL_TARGETS = all_targets(config, PATHS)

# A job's seed from the master seed and the job's identity (ints or names).
derived_seed = partial(derive_seed, config["seed"])
# Requests capped by max_cpus / max_mem_mb (small clusters, CI nodes).
cpus = partial(requests.capped_cpus, config)
mem = partial(requests.capped_mem, config)
job_resources = partial(requests.job_resources, config)
packed_resources = partial(requests.packed_resources, config)


def condense_seed(ckey, image):
    """An image's condensation seed: the same whether it is condensed alone or in a pack."""
    return derived_seed(2, parse_condense_key(ckey)[2], IMAGE_INDEX[image])


# ---------------------------------------------------------------- input and params functions
def get_testset_inputs(wc):
    """A test set's HR folder, and its LR folder where one exists."""
    return {k: v for k, v in testset_sources(config, PATHS, wc.testset).items() if v}


def get_folder_inputs(wc):
    return folder_inputs(DATASETS[wc.dataset])


def get_folder_crop(wc):
    return folder_crop(DATASETS[wc.dataset], config["data"]["crop"])


def get_export_inputs(wc):
    return export_inputs(PATHS, DATASETS, wc.dataset)


def get_export_card(wc):
    return export_card(
        config, wc.dataset, training=TRAINING, condensations=CONDENSATIONS
    )


def get_sr_train_inputs(wc):
    inputs = dataset_store(PATHS, DATASETS, wc.dataset)
    if config["data"]["validation"]:
        inputs["val"] = VALIDATION_DIR
    return inputs


def get_condense_params(wc):
    """The resolved condensation settings of one run that define its result; execution settings
    (fast path, logging, compilation) are left out, so a change to them reruns nothing. The job
    script takes those from the config itself."""
    return CONDENSATIONS.settings(wc.ckey).result_settings()


def get_condensed_patches(wc):
    """The synthetic LR patches of every image condensed for an IDC dataset."""
    ckey = CONDENSATIONS.key(wc.dataset)
    return [
        PATHS.condensed(ckey, image, ".npy")
        for image in CONDENSATIONS.images(wc.dataset)
    ]


def get_pack_images(wc):
    return CONDENSATIONS.packs(wc.ckey, CONDENSE_PACK)[int(wc.pack)]


def get_pack_image_ids(wc):
    return [IMAGE_INDEX[s] for s in get_pack_images(wc)]


def get_pack_seeds(wc):
    return [condense_seed(wc.ckey, s) for s in get_pack_images(wc)]


def get_image_pack(wc):
    """The folder of the packed job that condenses this image."""
    return PATHS.condense_pack(
        wc.ckey, CONDENSATIONS.pack_of(wc.ckey, wc.image, CONDENSE_PACK)
    )


def get_condensed_image_ids(wc):
    return [IMAGE_INDEX[s] for s in CONDENSATIONS.images(wc.dataset)]


def get_upsampler(wc):
    return PATHS.teacher(DATASETS[wc.dataset]["upsampler"])


def get_relabel_inputs(wc):
    return relabel_inputs(PATHS, DATASETS, wc.dataset)


def get_selection_inputs(wc):
    return selection_inputs(config, PATHS, wc.dataset)


def get_selection_params(wc):
    return selection_params(config, wc.dataset)


def get_table_metrics(wc):
    return table_metrics(config, PATHS, wc.table)


def get_table_entries(wc):
    return table_entries(config, wc.table)


def get_table_spec(wc):
    return paper_table_spec(config, wc.table)


def get_verdict_spec(wc):
    return verdict_spec(config, wc.table)


def get_figure_inputs(wc):
    return figure_inputs(config, PATHS, CONDENSATIONS)


wildcard_constraints:
    teacher=alternatives(config["teachers"]),
    model=alternatives(config["models"]),
    dataset=alternatives(DATASETS),
    testset=alternatives(config["data"]["testsets"]),
    table=alternatives(config["tables"]),
    image=alternatives(IMAGES),
    ckey=CONDENSE_KEY,
    pack=r"\d+",
