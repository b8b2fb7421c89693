rule data:
    input:
        run=rules.export.output.h5,
    output:
        h5=f"{RESULTS}/data/{VARIANT}/{{run}}/step{{step}}.h5",
    log:
        f"{LOGS}/data/{VARIANT}/{{run}}/step{{step}}.log",
    benchmark:
        f"{LOGS}/benchmarks/data/{VARIANT}/{{run}}/step{{step}}.tsv",
    conda:
        "../envs/rl.yaml"
    threads: 1
    params:
        analysis=ANALYSIS.stage_json("data"),
    message:
        "analysis samples of {wildcards.run}, step {wildcards.step}"
    shell:
        "python -m pgsubspaces.analysis.data --run {input.run:q} --step {wildcards.step:q}"
        " --out {output.h5:q} --analysis {params.analysis:q} > {log:q} 2>&1"
