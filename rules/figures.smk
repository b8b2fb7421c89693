localrules:
    run_tables,
    tables,
    figure,


rule figure:
    input:
        **{name: f"{RESULTS}/tables/{VARIANT}/{name}.csv" for name in TABLE_NAMES},
    output:
        pdf=report(
            "figures/{figure}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
        png="figures/{figure}.png",
    log:
        "logs/figures/{figure}.log",
    conda:
        "../envs/plots.yaml"
    params:
        t1=config["figures"]["overlap_t1"],
        caption=get_caption,
    message:
        "figure {wildcards.figure}"
    shell:
        "python -m pgsubspaces.figures {wildcards.figure} --tables $(dirname {input.fractions})"
        " --out {output.pdf} --t1 {params.t1} > {log} 2>&1"
