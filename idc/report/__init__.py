"""Report stage: result tables laid out like the paper (CSV, Markdown, LaTeX) and figures.

Entry points: `idc.report.tables.make_tables` (the workflow's table rule), with table specs
from `idc.report.specs.paper_table_specs`; `collect_results` / `render_table` / `write_table`
in `idc.report.tables`; the plotting functions of `idc.report.figures`. Published numbers:
`idc.report.paper_reference`.
"""
