rule run_tables:
    input:
        run=rules.export.output.h5,
        eigen=get_run_eigen_files,
        spectra=get_run_spectrum_files,
    output:
        **{name: f"{TABLES}/runs/{{run}}/{name}.csv" for name in TABLE_NAMES},
    log:
        f"{LOGS}/tables/{VARIANT}/{{run}}.log",
    benchmark:
        f"{LOGS}/benchmarks/tables/{VARIANT}/{{run}}.tsv",
    conda:
        "../envs/rl.yaml"
    params:
        analysis=ANALYSIS.stage_json("tables"),
        t1=get_overlap_t1,
    message:
        "tables of {wildcards.run}"
    shell:
        "python -m pgsubspaces.tables run --run {input.run:q} --eigen {input.eigen:q}"
        ' --spectra {input.spectra:q} --out-dir "$(dirname {output.fractions:q})"'
        " --analysis {params.analysis:q} --t1 {params.t1:q} > {log:q} 2>&1"


rule tables:
    input:
        expand("{folder}/{name}.csv", folder=run_table_dirs(), name=TABLE_NAMES),
    output:
        **{
            name: report(
                f"{TABLES}/{name}.csv",
                caption="../report/table.rst",
                category="Tables",
                labels={"table": name},
            )
            for name in TABLE_NAMES
        },
    log:
        f"{LOGS}/tables/{VARIANT}/merge.log",
    benchmark:
        f"{LOGS}/benchmarks/tables/{VARIANT}/merge.tsv",
    conda:
        "../envs/rl.yaml"
    params:
        runs=run_table_dirs(),
    message:
        "merge the tables of every run"
    shell:
        'python -m pgsubspaces.tables merge {params.runs:q} --out-dir "$(dirname {output.fractions:q})"'
        " > {log:q} 2>&1"


# The paper's Sec. 4 claims decided on the tables, and the eigensolver's accuracy behind them.
rule scorecard:
    input:
        rules.tables.output,
    output:
        csv=f"{TABLES}/scorecard.csv",
        accuracy=f"{TABLES}/accuracy.csv",
        html=report(
            f"{TABLES}/scorecard.html",
            caption="../report/scorecard.rst",
            category="Tables",
            labels={"table": "scorecard"},
        ),
    log:
        f"{LOGS}/tables/{VARIANT}/scorecard.log",
    benchmark:
        f"{LOGS}/benchmarks/tables/{VARIANT}/scorecard.tsv",
    conda:
        "../envs/rl.yaml"
    message:
        "the paper's claims on the tables"
    shell:
        'python -m pgsubspaces.tables.scorecard "$(dirname {output.csv:q})" --out {output.csv:q}'
        " --html {output.html:q} --accuracy {output.accuracy:q} > {log:q} 2>&1"
