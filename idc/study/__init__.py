"""The condensation settings study: the experiment that chose the condensation defaults
(`idc.condense.config`), and the generator of docs/condensation-study.md from a run of
config/condensation-study.yaml.

It is not a workflow stage: it runs the condensation stage (`idc.condense.stage`) per setting and
image with its quality diagnostics logged, trains EDSR models (`idc.sr`) for a downstream check and
draws with the report's figure helpers (`idc.report.figures`), so it sits above all three.

- `config`: the study file (`load_study`, its keys), each setting's condensation config, the
  paper's schedule scaled to a step count, the study's images.
- `run`: the patch store and extractor teacher, the (setting, image) condensations in a process
  pool; `run_study` runs the whole study, the downstream check included.
- `downstream`: EDSR trained on a setting's synthetic pairs or as many random real pairs, tested.
- `summary`: per-setting numbers from the study's files; the real-subset reference.
- `figures`: diagnostic curves and patch grids.
- `document`: `write_study_document`, the Markdown document from those files alone.
- `cli`: `python -m idc condense-study run | report`.

Every result is a file under the study's output folder, written atomically and skipped when it
exists, so an interrupted study resumes.

    python -m idc condense-study run --study config/condensation-study.yaml
    python -m idc condense-study report --study config/condensation-study.yaml --doc docs/condensation-study.md
"""
