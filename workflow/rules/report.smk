# Report (idc.report): the paper's tables (CSV long format, Markdown, LaTeX, HTML) and figures.


rule make_table:
    input:
        metrics=get_table_metrics,
    output:
        csv=report(
            f"{RESULTS}/tables/{{table}}.csv",
            caption="../report/table.rst",
            category="Tables",
        ),
        md=f"{RESULTS}/tables/{{table}}.md",
        tex=f"{RESULTS}/tables/{{table}}.tex",
        html=report(
            f"{RESULTS}/tables/{{table}}.html",
            caption="../report/table.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/make_table/{{table}}.log",
    wildcard_constraints:
        table=alternatives(PAPER_TABLES),
    conda:
        "../../envs/idc.yaml"
    resources:
        gpu=0,
        cpus_per_task=cpus(1),
        mem_mb=mem(2000),
        runtime=10,
    params:
        spec=get_table_spec,
        entries=get_table_entries,
        impl=IMPL["report"],
    script:
        "../scripts/make_table.py"


# Paired differences with bootstrap intervals over replicates and test images, read against the
# positive control (Whole - Random).
rule make_verdict:
    input:
        metrics=get_table_metrics,
    output:
        csv=report(
            f"{RESULTS}/tables/{{table}}.csv",
            caption="../report/verdict.rst",
            category="Tables",
        ),
        md=f"{RESULTS}/tables/{{table}}.md",
    log:
        f"{RESULTS}/logs/make_verdict/{{table}}.log",
    wildcard_constraints:
        table=alternatives(VERDICT_TABLES),
    conda:
        "../../envs/idc.yaml"
    resources:
        gpu=0,
        cpus_per_task=cpus(1),
        mem_mb=mem(4000),
        runtime=10,
    params:
        spec=get_verdict_spec,
        entries=get_table_entries,
        impl=IMPL["report"],
    script:
        "../scripts/make_verdict.py"


rule plot_figures:
    input:
        unpack(get_figure_inputs),
    output:
        done=f"{RESULTS}/figures/done.txt",
        trajectories=report(
            f"{RESULTS}/figures/trajectories.png",
            caption="../report/trajectories.rst",
            category="Figures",
        ),
        idc=report(
            directory(f"{RESULTS}/figures/idc"),
            patterns=["{name}.png"],
            caption="../report/idc_figures.rst",
            category="Figures",
        ),
    log:
        f"{RESULTS}/logs/plot_figures.log",
    conda:
        "../../envs/idc.yaml"
    resources:
        gpu=0,
        cpus_per_task=cpus(1),
        mem_mb=mem(4000),
        runtime=10,
    params:
        pairs=figure_pairs(config),
        validation=config["data"]["validation"],
        impl=IMPL["report"],
    script:
        "../scripts/plot_figures.py"
