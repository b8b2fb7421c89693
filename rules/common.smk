# Workflow helpers: config validation, run specs, wildcard constraints and target lists.
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

# Rules call `python -m pgsubspaces.<stage>`. That `python` is the interpreter running Snakemake (so
# `.venv/bin/snakemake` works without activating the venv) unless conda envs are in use, and the package
# is importable in every job, also in conda envs that do not install it.
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
settings = workflow.deployment_settings
USE_CONDA = (
    settings is not None and DeploymentMethod.CONDA in settings.deployment_method
)
PATH_PREFIX = "" if USE_CONDA else f"export PATH={Path(sys.executable).parent}:$PATH; "
# (braces doubled twice: once for the f-string, once for Snakemake's formatting of shell commands)
shell.prefix(f"{PATH_PREFIX}export PYTHONPATH={SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

from pgsubspaces.config import ConfigError, run_specs, spectrum_runs, validate_config
from pgsubspaces.figures import FIGURES, caption

try:
    validate_config(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

RUNS = run_specs(config)
SPECTRA = spectrum_runs(config)
RESULTS = f"results/{config['experiment']}"
LOGS = f"logs/{config['experiment']}"
ANALYSIS = config["analysis"]
VARIANT = ANALYSIS[
    "variant"
]  # a path segment: corrected and original results never mix


wildcard_constraints:
    algo="ppo|sac",
    task="|".join(config["tasks"]),
    seed=r"\d+",
    step=r"\d{9}",
    figure="|".join(FIGURES),


def get_spec(wildcards):
    """The RunSpec JSON of the job's (algo, task, seed)."""
    key = (wildcards.algo, wildcards.task, int(wildcards.seed))
    if key not in RUNS:
        raise WorkflowError(
            f"{wildcards.algo}/{wildcards.task}/seed{wildcards.seed} is not among the runs of config "
            f"experiment '{config['experiment']}'"
        )
    return RUNS[key].to_json()


# Wall-clock planning for cluster jobs (minutes); one core (platform notes: PPO ~1,400 env steps/s, SAC
# 70-85 steps/s), halved for slower nodes and evaluation, doubled again below. Locally ignored.
STEPS_PER_SECOND = {"ppo": 700, "sac": 40}


def get_train_minutes(wildcards):
    spec = RUNS[wildcards.algo, wildcards.task, int(wildcards.seed)]
    return 15 + int(2 * spec.total_steps / STEPS_PER_SECOND[wildcards.algo] / 60)


def get_run_dir(wildcards):
    return f"{RESULTS}/runs/{wildcards.algo}/{wildcards.task}/seed{wildcards.seed}"


def run_files():
    return [f"{RESULTS}/runs/{algo}/{task}/seed{seed}.h5" for algo, task, seed in RUNS]


def eigen_files():
    """One eigen file per checkpoint of every run."""
    return [
        f"{RESULTS}/eigen/{VARIANT}/{algo}/{task}/seed{seed}/step{step:09d}.h5"
        for (algo, task, seed), spec in RUNS.items()
        for step in spec.checkpoint_steps
    ]


def data_options():
    a = ANALYSIS
    return (
        f"--samples {a['ppo_samples']} --fresh-samples {a['sac_fresh_samples']}"
        f" --variant {VARIANT} --seed {a['seed']}"
    )


def eigen_options():
    a = ANALYSIS
    options = (
        f"--k {a['k']} --solver {a['solver']} --tol {a['tol']} --dtype {a['dtype']} --device {a['device']}"
        f" --chunk-size {a['chunk_size']} --memory-budget-gb {a['memory_budget_gb']} --variant {VARIANT}"
    )
    if a["max_matvecs"] is not None:
        options += f" --max-matvecs {a['max_matvecs']}"
    return options


def spectrum_file(algo, task, seed, step):
    return f"{RESULTS}/spectra/{VARIANT}/{algo}/{task}/seed{seed}/step{step:09d}.h5"


def spectrum_files():
    """The full spectra of Fig. 1 (PPO, first seed, last checkpoint per task)."""
    return [spectrum_file(*spectrum) for spectrum in SPECTRA]


def get_run_spectrum_files(wildcards):
    run = (wildcards.algo, wildcards.task, int(wildcards.seed))
    return [spectrum_file(*spectrum) for spectrum in SPECTRA if spectrum[:3] == run]


def spectrum_options():
    a, spectrum = ANALYSIS, config["figures"]["spectrum"]
    samples = f" --samples {spectrum['samples']}" if spectrum["samples"] else ""
    return (
        f"--max-parameters {spectrum['max_parameters']}{samples} --dtype {a['dtype']}"
        f" --device {a['device']} --chunk-size {a['chunk_size']}"
        f" --memory-budget-gb {a['memory_budget_gb']} --variant {VARIANT}"
    )


def get_run_eigen_files(wildcards):
    spec = RUNS[wildcards.algo, wildcards.task, int(wildcards.seed)]
    return [
        f"{RESULTS}/eigen/{VARIANT}/{spec.run_id}/step{step:09d}.h5"
        for step in spec.checkpoint_steps
    ]


def run_table_dirs():
    return [
        f"{RESULTS}/tables/{VARIANT}/runs/{algo}/{task}/seed{seed}"
        for algo, task, seed in RUNS
    ]


def tables_options():
    t = config["tables"]
    return (
        f"--k-levels {' '.join(map(str, t['k_levels']))} --t1 {' '.join(map(str, t['overlap_t1']))}"
        f" --smoothing-steps {t['smoothing_steps']}"
        f" --thresholds {t['training_threshold']} {t['convergence_threshold']} --seed {t['seed']}"
    )


TABLE_NAMES = ("fractions", "overlaps", "phases", "curves", "spectra")


def table_files():
    return [f"{RESULTS}/tables/{VARIANT}/{name}.csv" for name in TABLE_NAMES]


def figure_files():
    return [f"figures/{name}.pdf" for name in FIGURES]


def get_caption(wildcards):
    return caption(wildcards.figure, config)


def all_targets():
    return (
        run_files() + eigen_files() + spectrum_files() + table_files() + figure_files()
    )
