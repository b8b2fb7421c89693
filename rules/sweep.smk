# The random-hyperparameter study (paper Appendix C): its runs go through train ... run_tables like the
# main study's, under runs/sweep/<algo>/<task>/<configuration>/seed<seed>; these rules draw and summarise.
localrules:
    sweep_configurations,
    sweep_table,


rule sweep_configurations:
    output:
        report(
            f"{RESULTS}/runs/sweep/{{algo}}/configurations.csv",
            caption="../report/configurations.rst",
            category="Tables",
            labels={"table": "sweep configurations {algo}"},
        ),
    log:
        f"{LOGS}/sweep/{{algo}}/configurations.log",
    benchmark:
        f"{LOGS}/benchmarks/sweep/{{algo}}/configurations.tsv",
    conda:
        "../envs/rl.yaml"
    params:
        n=config["sweep"]["configurations"],
        seed=config["sweep"]["seed"],
        fixed=get_fixed,
    message:
        "the {wildcards.algo} sweep configurations"
    shell:
        "python -m pgsubspaces.sweep configurations --algo {wildcards.algo:q} --n {params.n:q}"
        " --seed {params.seed:q} --fixed {params.fixed:q} --out {output:q} > {log:q} 2>&1"


rule sweep_table:
    input:
        summaries=[training_summary(run) for run in SWEEP_RUNS + TUNED_RUNS],
        sweep=get_sweep_run_tables,
        tuned=expand(
            "{folder}/{name}.csv", folder=run_table_dirs(TUNED_RUNS), name=TABLE_NAMES
        ),
    output:
        report(
            f"{TABLES}/sweep.csv",
            caption="../report/sweep.rst",
            category="Tables",
            labels={"table": "sweep"},
        ),
    log:
        f"{LOGS}/tables/{VARIANT}/sweep.log",
    benchmark:
        f"{LOGS}/benchmarks/tables/{VARIANT}/sweep.tsv",
    conda:
        "../envs/rl.yaml"
    params:
        entries=json.dumps(SWEEP_ENTRIES),
        smoothing=ANALYSIS.smoothing_steps,
    message:
        "summarise the sweep"
    shell:
        "python -m pgsubspaces.sweep table --summaries {input.summaries:q}"
        ' --tables "$(dirname {output:q})/runs" --entries {params.entries:q}'
        " --smoothing-steps {params.smoothing:q} --out {output:q} > {log:q} 2>&1"
