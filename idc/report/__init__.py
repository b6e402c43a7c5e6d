"""Report stage: result tables laid out like the paper (CSV, Markdown, LaTeX, HTML) and figures.

- `results`: per-image test scores gathered into one long-format frame; a finished run's record.
- `tables`: what a table shows (`TableSpec`), its layout and text; `make_tables` is the
  workflow's table rule.
- `paper_reference`: the paper's published numbers (`paper_tables.txt`), for comparison rows.
- `figures`: patch grids, validation trajectories, loss curves; `plot_workflow_figures` is the
  workflow's figure rule.
- `cli`: `python -m idc tables | figures | run-summary`.
- `io`: atomic writes of every output.
"""
