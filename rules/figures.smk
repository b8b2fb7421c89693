localrules:
    run_tables,
    tables,
    scorecard,
    figure,


rule figure:
    input:
        unpack(get_figure_tables),
    output:
        pdf=report(
            f"{FIGURES_DIR}/{{figure}}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
        png=f"{FIGURES_DIR}/{{figure}}.png",
    log:
        f"{LOGS}/figures/{{figure}}.log",
    benchmark:
        f"{LOGS}/benchmarks/figures/{{figure}}.tsv",
    conda:
        "../envs/plots.yaml"
    params:
        t1=config["figures"]["overlap_t1"],
        caption=get_caption,
    message:
        "figure {wildcards.figure}"
    shell:
        "python -m pgsubspaces.figures {wildcards.figure:q} --tables {input:q}"
        " --out {output.pdf:q} --t1 {params.t1:q} > {log:q} 2>&1"
