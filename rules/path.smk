# DRAFT (issue 13, unfinished): not included by the Snakefile yet; needs PATH_DIR, PATH_RUN, LENS_TABLES
# and the reconstruction and cross-lens modules.
# The policy-path lens (docs/path.md) on every main run that records an actor path, and the cross-lens
# (docs/crosslens.md) that sets it against the Hessian's eigenspaces of the same run.


rule path_lens:
    input:
        run=f"{RESULTS}/runs/{{run}}.h5",
    output:
        **{name: f"{PATH_DIR}/runs/{{run}}/{name}.csv" for name in LENS_TABLES},
    log:
        f"{LOGS}/path/{{run}}/lens.log",
    wildcard_constraints:
        run=PATH_RUN,
    conda:
        "../envs/rl.yaml"
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
    wildcard_constraints:
        run=PATH_RUN,
    conda:
        "../envs/rl.yaml"
    threads: 1
    params:
        settings=path_settings(config, "reconstruction"),
    message:
        "rebuild and evaluate the path policies of {wildcards.run}"
    shell:
        "python -m pgsubspaces.path.reconstruction --run {input.run:q} --out {output.csv:q}"
        " --settings {params.settings:q} > {log:q} 2>&1"


rule crosslens:
    input:
        run=f"{RESULTS}/runs/{{run}}.h5",
        eigen=get_run_eigen_files,
    output:
        csv=f"{TABLES}/runs/{{run}}/crosslens.csv",
    log:
        f"{LOGS}/crosslens/{VARIANT}/{{run}}.log",
    wildcard_constraints:
        run=PATH_RUN,
    conda:
        "../envs/rl.yaml"
    params:
        settings=path_settings(config, "crosslens"),
    message:
        "the Hessian's eigenspaces against the actor path of {wildcards.run}"
    shell:
        "python -m pgsubspaces.path.crosslens --run {input.run:q} --eigen {input.eigen:q}"
        " --out {output.csv:q} --settings {params.settings:q} > {log:q} 2>&1"
