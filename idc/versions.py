"""Implementation versions of the result-defining stages.

Snakemake cannot see code changes inside `idc/`. Each algorithmic rule takes its stage's version
as a parameter, so bumping a number here reruns exactly the stages whose results it changes.
"""

IMPL_VERSIONS = {
    "data": 1,  # demo images, test-set preparation, cropping, imresize
    "train": 1,  # SR training engine (teachers and evaluated models)
    "condense": 2,  # IDC condensation of one image (2: its log's config has no `seed`)
    "upsample": 1,  # HR up-sampling and assembly of the synthetic store
    "select": 1,  # baseline selection
    "test": 1,  # SR inference and metrics
    "report": 1,  # tables and figures
    "export": 1,  # paired PNG folders and dataset cards
}
