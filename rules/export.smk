rule export:
    input:
        summary=rules.train.output.summary,
    output:
        h5=f"{RESULTS}/runs/{{run}}.h5",
    log:
        f"{LOGS}/export/{{run}}.log",
    benchmark:
        f"{LOGS}/benchmarks/export/{{run}}.tsv",
    wildcard_constraints:
        run=TRAINED_RUN,
    conda:
        "../envs/rl.yaml"
    message:
        "export {wildcards.run} to HDF5"
    shell:
        'python -m pgsubspaces.export run --run-dir "$(dirname {input.summary:q})"'
        " --out {output.h5:q} > {log:q} 2>&1"


# Checkpoints trained elsewhere (config imports.<name>, run id imports/<name>): exported from their model
# zips, so data, eigen and run_tables treat them like a trained run; never a training job.
rule export_import:
    input:
        unpack(get_import_inputs),
    output:
        h5=f"{RESULTS}/runs/{{run}}.h5",
    log:
        f"{LOGS}/export/{{run}}.log",
    benchmark:
        f"{LOGS}/benchmarks/export/{{run}}.tsv",
    wildcard_constraints:
        run=IMPORTED_RUN,
    conda:
        "../envs/rl.yaml"
    params:
        arguments=get_import_arguments,
    message:
        "export the model zips of {wildcards.run} to HDF5"
    shell:
        "python -m pgsubspaces.export model {params.arguments:q} --out {output.h5:q} > {log:q} 2>&1"
