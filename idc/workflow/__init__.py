"""What the Snakemake workflow computes from its configuration, as importable, tested functions.

``workflow/rules/common.smk`` loads the run (:func:`idc.workflow.run.load_run`: the checked config
and the training images read while the workflow is parsed) and binds these functions to it; the
rule files read the constants and input functions it defines. Modules:

- :mod:`~idc.workflow.paths`: where a run's files lie;
- :mod:`~idc.workflow.data`: the training images (listing, stems, patch counts) and test sets;
- :mod:`~idc.workflow.datasets`: dataset lists, condensation keys and settings, patch stores,
  folder datasets;
- :mod:`~idc.workflow.slices`: the config slices that become rule params;
- :mod:`~idc.workflow.requests`: CPU and memory requests (GPU requests: :mod:`idc.resources`);
- :mod:`~idc.workflow.tables`: tables, figures and the workflow's targets;
- :mod:`~idc.workflow.export`: the card of an exported dataset;
- :mod:`~idc.workflow.run`: loading and checking a run, every error one line naming the key.
"""
