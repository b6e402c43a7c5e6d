# idc-workflow: Instance Data Condensation for image super-resolution, end to end.
# Wiring only: configuration, rule files and the default target. All logic lives in idc/.

from snakemake.utils import min_version

min_version("9.0")


# The embedded demo is the default configuration; a --configfile (e.g. config/config.yaml, the
# paper's settings, set by profiles/slurm) replaces it instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: "config/demo.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/condense.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/export.smk"


rule all:
    default_target: True
    input:
        all_targets(),
