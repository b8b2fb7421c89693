# Regenerates "Identifying Policy Gradient Subspaces" (Schneider et al., ICLR 2024).
#   snakemake --cores 2                                  the default config, end to end
#   snakemake --cores 2 --configfile config/paper.yaml   the paper's grid
#   snakemake --profile profiles/slurm ...               the same DAG on a SLURM cluster
from snakemake.utils import min_version

min_version("9.0")


report: "report/workflow.rst"


configfile: "config/tasks.yaml"
configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/train.smk"
include: "rules/export.smk"
include: "rules/data.smk"
include: "rules/eigen.smk"
include: "rules/tables.smk"
include: "rules/sweep.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        all_targets(),
