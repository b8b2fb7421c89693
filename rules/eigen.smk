# The heavy stage: `gpu=1` lets a cluster profile send it to a GPU (locally an unset resource is unlimited,
# and device auto falls back to the CPU). No `message`, so that a dry run shows each job's resources.
rule eigen:
    input:
        run=rules.export.output.h5,
        data=rules.data.output.h5,
    output:
        h5=f"{RESULTS}/eigen/{VARIANT}/{{run}}/step{{step}}.h5",
    log:
        f"{LOGS}/eigen/{VARIANT}/{{run}}/step{{step}}.log",
    benchmark:
        f"{LOGS}/benchmarks/eigen/{VARIANT}/{{run}}/step{{step}}.tsv",
    conda:
        "../envs/rl.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        analysis=ANALYSIS.stage_json("eigen"),
    shell:
        "python -m pgsubspaces.analysis.eigen --run {input.run:q} --data {input.data:q} --out {output.h5:q}"
        " --analysis {params.analysis:q} --threads {threads} > {log:q} 2>&1"


# Fig. 1's histogram needs every eigenvalue: an explicit Hessian, for the few checkpoints it shows.
rule spectrum:
    input:
        run=rules.export.output.h5,
        data=rules.data.output.h5,
    output:
        h5=f"{RESULTS}/spectra/{VARIANT}/{{run}}/step{{step}}.h5",
    log:
        f"{LOGS}/spectra/{VARIANT}/{{run}}/step{{step}}.log",
    benchmark:
        f"{LOGS}/benchmarks/spectra/{VARIANT}/{{run}}/step{{step}}.tsv",
    conda:
        "../envs/rl.yaml"
    threads: 1
    resources:
        gpu=1,
    params:
        analysis=ANALYSIS.stage_json("spectrum"),
    shell:
        "python -m pgsubspaces.analysis.spectrum --run {input.run:q} --data {input.data:q} --out {output.h5:q}"
        " --analysis {params.analysis:q} --threads {threads} > {log:q} 2>&1"
