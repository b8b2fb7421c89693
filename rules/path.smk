# The policy-path lens (docs/path.md) on every main run that records an actor path, and the cross-lens
# (docs/crosslens.md) that sets it against the Hessian's eigenspaces of the same run.


localrules:
    path_tables,
    path_reconstruction_table,
    path_findings,
    crosslens_tables,


rule path_lens:
    input:
        run=f"{RESULTS}/runs/{{run}}.h5",
    output:
        **{name: f"{PATH_DIR}/runs/{{run}}/{name}.csv" for name in LENS_TABLES},
    log:
        f"{LOGS}/path/{{run}}/lens.log",
    benchmark:
        f"{LOGS}/benchmarks/path/{{run}}/lens.tsv",
    wildcard_constraints:
        run=PATH_RUN,
    conda:
        "../envs/rl.yaml"
    resources:
        mem_mb=get_path_mem_mb,
    params:
        settings=path_settings(config, "lens"),
    message:
        "path metrics and temporal SVD of {wildcards.run}"
    shell:
        "python -m pgsubspaces.path.lens --run {input.run:q}"
        f' --out-dir "$(dirname {{output.{LENS_TABLES[0]}:q}})"'
        " --settings {params.settings:q} > {log:q} 2>&1"


# Rebuilds the path's policies from their first r SVD directions and evaluates them in the environment.
rule path_reconstruction:
    input:
        run=f"{RESULTS}/runs/{{run}}.h5",
    output:
        csv=f"{PATH_DIR}/runs/{{run}}/reconstruction.csv",
    log:
        f"{LOGS}/path/{{run}}/reconstruction.log",
    benchmark:
        f"{LOGS}/benchmarks/path/{{run}}/reconstruction.tsv",
    wildcard_constraints:
        run=PATH_RUN,
    conda:
        "../envs/rl.yaml"
    resources:
        mem_mb=get_path_mem_mb,
    params:
        settings=path_settings(config, "reconstruction"),
    message:
        "rebuild and evaluate the path policies of {wildcards.run}"
    shell:
        "python -m pgsubspaces.path.reconstruction --run {input.run:q} --out {output.csv:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule path_tables:
    input:
        expand("{folder}/{name}.csv", folder=path_run_dirs(), name=LENS_TABLES),
    output:
        **{
            name: report(
                f"{PATH_DIR}/{name}.csv",
                caption="../report/table.rst",
                category="Policy path",
                labels={"table": name},
            )
            for name in LENS_TABLES
        },
    log:
        f"{LOGS}/path/merge.log",
    benchmark:
        f"{LOGS}/benchmarks/path/merge.tsv",
    conda:
        "../envs/rl.yaml"
    params:
        runs=path_run_dirs(),
    message:
        "merge the policy-path tables of every run"
    shell:
        'python -m pgsubspaces.path.lens merge {params.runs:q} --out-dir "$(dirname {output.path_layers:q})"'
        " > {log:q} 2>&1"


rule path_reconstruction_table:
    input:
        expand("{folder}/reconstruction.csv", folder=path_run_dirs()),
    output:
        csv=report(
            f"{PATH_DIR}/reconstruction.csv",
            caption="../report/table.rst",
            category="Policy path",
            labels={"table": "reconstruction"},
        ),
    log:
        f"{LOGS}/path/reconstruction_merge.log",
    benchmark:
        f"{LOGS}/benchmarks/path/reconstruction_merge.tsv",
    conda:
        "../envs/rl.yaml"
    message:
        "merge the reconstruction tables of every run"
    shell:
        "python -m pgsubspaces.path.reconstruction merge {input:q} --out {output.csv:q} > {log:q} 2>&1"


# The policy-path paper's phenomena 1.1-2.2 as numbers per run (printed to the log, and a table).
rule path_findings:
    input:
        rules.path_tables.output,
    output:
        csv=report(
            f"{PATH_DIR}/path_findings.csv",
            caption="../report/table.rst",
            category="Policy path",
            labels={"table": "path_findings"},
        ),
    log:
        f"{LOGS}/path/findings.log",
    benchmark:
        f"{LOGS}/benchmarks/path/findings.tsv",
    conda:
        "../envs/rl.yaml"
    message:
        "the policy-path paper's phenomena on every run"
    shell:
        'python -m pgsubspaces.tables path-findings "$(dirname {output.csv:q})" --out {output.csv:q}'
        " > {log:q} 2>&1"


rule crosslens:
    input:
        run=f"{RESULTS}/runs/{{run}}.h5",
        eigen=get_run_eigen_files,
    output:
        csv=f"{TABLES}/runs/{{run}}/crosslens.csv",
    log:
        f"{LOGS}/crosslens/{VARIANT}/{{run}}.log",
    benchmark:
        f"{LOGS}/benchmarks/crosslens/{VARIANT}/{{run}}.tsv",
    wildcard_constraints:
        run=PATH_RUN,
    conda:
        "../envs/rl.yaml"
    resources:
        mem_mb=get_path_mem_mb,
    params:
        settings=path_settings(config, "crosslens"),
    message:
        "the Hessian's eigenspaces against the actor path of {wildcards.run}"
    shell:
        "python -m pgsubspaces.path.crosslens --run {input.run:q} --eigen {input.eigen:q}"
        " --out {output.csv:q} --settings {params.settings:q} > {log:q} 2>&1"


rule crosslens_tables:
    input:
        expand("{folder}/crosslens.csv", folder=run_table_dirs(PATH_RUNS)),
    output:
        csv=report(
            f"{TABLES}/crosslens.csv",
            caption="../report/table.rst",
            category="Tables",
            labels={"table": "crosslens"},
        ),
    log:
        f"{LOGS}/tables/{VARIANT}/crosslens.log",
    benchmark:
        f"{LOGS}/benchmarks/tables/{VARIANT}/crosslens.tsv",
    conda:
        "../envs/rl.yaml"
    message:
        "merge the cross-lens tables of every run"
    shell:
        "python -m pgsubspaces.path.crosslens merge {input:q} --out {output.csv:q} > {log:q} 2>&1"
