rule train:
    output:
        summary=f"{RESULTS}/runs/{{algo}}/{{task}}/seed{{seed}}/training.json",
    log:
        f"{LOGS}/train/{{algo}}/{{task}}/seed{{seed}}.log",
    conda:
        "../envs/rl.yaml"
    threads: 1
    resources:
        runtime=get_train_minutes,
    params:
        spec=get_spec,
        device=config["device"],
    message:
        "train {wildcards.algo} on {wildcards.task}, seed {wildcards.seed}"
    shell:
        "python -m pgsubspaces.train --spec {params.spec:q} --out {output.summary}"
        " --device {params.device} --threads {threads} > {log} 2>&1"
