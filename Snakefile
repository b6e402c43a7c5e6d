# idc-workflow: Instance Data Condensation for image super-resolution, end to end.
# Wiring only: configuration, rule files and the default target. All logic lives in idc/.
#
# workflow/rules/<package>.smk holds the rules whose scripts call idc.<package>: data.smk (idc.data:
# images, test sets, patch store, export and import of paired folders), sr.smk (idc.sr: teachers,
# evaluated SR networks), condense.smk (idc.condense), select.smk (idc.select: the selection
# baselines), report.smk (idc.report). common.smk holds what is not a rule: the checked config, the
# run's constants, the get_* functions that compute a rule's input or params (from idc.workflow).

from snakemake.utils import min_version

min_version("9.0")


# The embedded demo is the default configuration; a --configfile (e.g. config/config.yaml, the
# paper's settings, set by profiles/slurm) replaces it instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: "config/demo.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/sr.smk"
include: "workflow/rules/condense.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        ALL_TARGETS,
