"""Report stage: result tables laid out like the paper (CSV, Markdown, LaTeX, HTML), figures, verdicts.

- `results`: per-image test scores gathered into one long-format frame; a finished run's record.
- `tables`: what a table shows (`TableSpec`) and the results it reads; `make_tables` is the
  workflow's table rule.
- `table_layout`: a table as shown, whatever the format: names, number formats, ranking marks.
- `table_formats`: that layout written as Markdown, LaTeX and HTML.
- `paper_reference`: the paper's published numbers (`paper_tables.txt`), for comparison rows.
- `figures`: patch grids, validation trajectories, loss curves; `plot_workflow_figures` is the
  workflow's figure rule.
- `verdict`: whether one training set beats another beyond the spread of retraining (paired
  differences, bootstrap intervals); `make_verdict_from_entries` is the workflow's verdict rule.
- `cli`: `python -m idc tables | figures | run-summary`.

Every output is written atomically through `idc.atomic`.
"""
