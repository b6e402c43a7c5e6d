"""Report stage: result tables laid out like the paper (CSV, Markdown, LaTeX) and figures.

Entry points: `idc.report.tables.make_tables` (the workflow's table rule),
`idc.report.tables.collect_results` / `render_table` / `write_table`, and the plotting
functions of `idc.report.figures`. Published numbers: `idc.report.paper_reference`.
"""
