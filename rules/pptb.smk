# The PPTB study (docs/pptb.md): its base and PPTB runs go through train and export like every run, under
# runs/pptb/<algo>/<task>/<base or variant>/seed<seed>; these rules add a random agent per task and compare.
localrules:
    pptb_tables,


rule pptb_random:
    output:
        json=f"{PPTB_DIR}/random/{{task}}.json",
    log:
        f"{LOGS}/pptb/random/{{task}}.log",
    benchmark:
        f"{LOGS}/benchmarks/pptb/random/{{task}}.tsv",
    wildcard_constraints:
        task="|".join(PPTB_TASKS) or "(?!)",
    conda:
        "../envs/rl.yaml"
    params:
        env_id=lambda wildcards: config["tasks"][wildcards.task]["env_id"],
        env_kwargs=lambda wildcards: json.dumps(
            config["tasks"][wildcards.task].get("env_kwargs", {}), sort_keys=True
        ),
        episodes=config["pptb"]["random"]["episodes"],
        seed=config["pptb"]["random"]["seed"],
    message:
        "random agent on {wildcards.task}"
    shell:
        "python -m pgsubspaces.comparison.random_agent --task {wildcards.task:q} --env-id {params.env_id:q}"
        " --env-kwargs {params.env_kwargs:q} --episodes {params.episodes:q} --seed {params.seed:q}"
        " --out {output.json:q} > {log:q} 2>&1"


rule pptb_tables:
    input:
        runs=[f"{RESULTS}/runs/{run}.h5" for run in PPTB_RUNS],
        random=expand("{folder}/random/{task}.json", folder=PPTB_DIR, task=PPTB_TASKS),
    output:
        **{
            name: report(
                f"{PPTB_DIR}/{name}.csv",
                caption="../report/table.rst",
                category="PPTB",
                labels={"table": name},
            )
            for name in PPTB_TABLES
        },
    log:
        f"{LOGS}/pptb/tables.log",
    benchmark:
        f"{LOGS}/benchmarks/pptb/tables.tsv",
    conda:
        "../envs/rl.yaml"
    params:
        entries=json.dumps(PPTB_ENTRIES),
        bootstrap=json.dumps(config["pptb"]["bootstrap"], sort_keys=True),
    message:
        "compare the PPTB runs with their base runs"
    shell:
        "python -m pgsubspaces.comparison --runs {input.runs:q} --random {input.random:q}"
        " --entries {params.entries:q} --bootstrap {params.bootstrap:q}"
        ' --out-dir "$(dirname {output.pptb:q})" > {log:q} 2>&1'
