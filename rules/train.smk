# A checkpoint rule: whether a run finished or diverged (a random sweep configuration may) is known only
# after training, and the sweep table asks for the analysis of the finished ones only (rules/sweep.smk).
checkpoint train:
    output:
        summary=f"{RESULTS}/runs/{{run}}/training.json",
    log:
        f"{LOGS}/train/{{run}}.log",
    benchmark:
        f"{LOGS}/benchmarks/train/{{run}}.tsv",
    wildcard_constraints:
        run=TRAINED_RUN,
    conda:
        "../envs/rl.yaml"
    threads: 1
    resources:
        runtime=get_train_minutes,
        mem_mb=get_train_mem_mb,
    params:
        spec=get_spec,
        device=config["device"],
    message:
        "train {wildcards.run}"
    shell:
        "python -m pgsubspaces.train --spec {params.spec:q} --out {output.summary:q}"
        " --device {params.device:q} --threads {threads} > {log:q} 2>&1"
