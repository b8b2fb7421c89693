rule export:
    input:
        summary=rules.train.output.summary,
    output:
        h5=f"{RESULTS}/runs/{{algo}}/{{task}}/seed{{seed}}.h5",
    log:
        f"{LOGS}/export/{{algo}}/{{task}}/seed{{seed}}.log",
    conda:
        "../envs/rl.yaml"
    params:
        run_dir=get_run_dir,
    message:
        "export {wildcards.algo} on {wildcards.task}, seed {wildcards.seed} to HDF5"
    shell:
        "python -m pgsubspaces.export run --run-dir {params.run_dir} --out {output.h5} > {log} 2>&1"


# Checkpoints trained elsewhere: put an SB3 PPO/SAC zip at imports/<name>.zip, ask for results/imports/<name>.h5.
rule export_model:
    input:
        zip="imports/{name}.zip",
    output:
        h5="results/imports/{name}.h5",
    log:
        "logs/imports/{name}.log",
    conda:
        "../envs/rl.yaml"
    message:
        "export the model zip {input.zip} to HDF5"
    shell:
        "python -m pgsubspaces.export model {input.zip} --out {output.h5} > {log} 2>&1"
