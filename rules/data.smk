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
        analysis=ANALYSIS.stage_json("data"),
    message:
        "analysis samples of {wildcards.run}, step {wildcards.step}"
    shell:
        "python -m pgsubspaces.analysis_data --run {input.run} --step {wildcards.step}"
        " --out {output.h5} --analysis {params.analysis:q} > {log} 2>&1"
