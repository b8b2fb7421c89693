rule data:
    input:
        run=rules.export.output.h5,
    output:
        h5=f"{RESULTS}/data/{VARIANT}/{{run}}/step{{step}}.h5",
    log:
        f"{LOGS}/data/{VARIANT}/{{run}}/step{{step}}.log",
    conda:
        "../envs/rl.yaml"
    threads: 1
    params:
        options=data_options(),
    message:
        "analysis samples of {wildcards.run}, step {wildcards.step}"
    shell:
        "python -m pgsubspaces.analysis_data --run {input.run} --step {wildcards.step}"
        " --out {output.h5} {params.options} > {log} 2>&1"
