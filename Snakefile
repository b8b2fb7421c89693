# Regenerates "Identifying Policy Gradient Subspaces" (Schneider et al., ICLR 2024), and sees the same runs
# through the policy-path lens of "Policy Path Trimming and Boosting" and the cross-lens of the two.
#   snakemake --cores 2                                  the default config, end to end
#   snakemake --cores 2 --configfile config/paper.yaml   the paper's grid
#   ... --configfile config/paper-path.yaml              the policy-path paper's runs, both lenses, and PPTB
#   snakemake --profile profiles/slurm ...               the same DAG on a SLURM cluster
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from pgsubspaces.config import checked_yaml


report: "report/workflow.rst"


# The task registry always; the default experiment only when no experiment config is given, so that a
# key an experiment config leaves unset takes the schema's (paper) default, never a laptop-sized value.
# To build on the default experiment: --configfile config/config.yaml my.yaml
configfile: checked_yaml("config/tasks.yaml")


if "experiment" not in config:

    configfile: checked_yaml("config/config.yaml")


include: "rules/common.smk"
include: "rules/train.smk"
include: "rules/export.smk"
include: "rules/data.smk"
include: "rules/eigen.smk"
include: "rules/tables.smk"
include: "rules/sweep.smk"
include: "rules/path.smk"
include: "rules/pptb.smk"
include: "rules/figures.smk"


rule all:
    default_target: True
    input:
        all_targets(),
