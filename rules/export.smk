rule export:
    input:
        summary=rules.train.output.summary,
    output:
        h5=f"{RESULTS}/runs/{{run}}.h5",
    log:
        f"{LOGS}/export/{{run}}.log",
    conda:
        "../envs/rl.yaml"
    message:
        "export {wildcards.run} to HDF5"
    shell:
        'python -m pgsubspaces.export run --run-dir "$(dirname {input.summary:q})"'
        " --out {output.h5:q} > {log:q} 2>&1"


# Checkpoints trained elsewhere: put an SB3 PPO/SAC zip at imports/<name>.zip, ask for results/imports/<name>.h5.
rule export_model:
    input:
        zip="imports/{name}.zip",
    output:
        h5="results/imports/{name}.h5",
    log:
        "logs/imports/{name}.log",
    wildcard_constraints:
        name=r"[A-Za-z0-9_.-]+",
    conda:
        "../envs/rl.yaml"
    message:
        "export the model zip {input.zip} to HDF5"
    shell:
        "python -m pgsubspaces.export model {input.zip:q} --out {output.h5:q} > {log:q} 2>&1"
