"""IDC condensation (paper sections 3, B, C.1): per-instance multi-level distribution matching of
Random Local Fourier Features, then HR up-sampling by the teacher and assembly into a patch store.

Public API:
- `CondenseConfig`, `VARIANTS` (the named variants: the paper's settings, its ablations, the study's and the controls') in `idc.condense.config`;
- `condense_instance(real_lr, extractor, cfg, *, seed, device, progress, resume_path, on_log,
  n_synthetic)` in `idc.condense.condenser` (pure: tensors in, tensors + log out), whose loop
  reads against the paper's Algorithm 1; one instance's state and losses in
  `idc.condense.instance`, checkpoint files in `idc.condense.checkpoint`, extractor access in
  `idc.condense.extractor`;
- `allocate_synthetic(patch_counts, ratio, budget)` in `idc.condense.budget`: each image's number
  of synthetic patches (default: the baselines' floor(r N) split by largest remainder);
- `condense_image`, `upsample_and_assemble`, `memorisation_report` in `idc.condense.stage`
  (file level, what the workflow calls); commands in `idc.condense.cli`.
Choices where the paper is silent: config/README.md (section condense).
"""
