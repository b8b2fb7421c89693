# Workflow helpers: config validation, run specs, wildcard constraints and target lists.
import shlex
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


def shell_word(path):
    """``path`` as one shell word inside a shell prefix (quoted; braces doubled for Snakemake's formatting)."""
    return shlex.quote(str(path)).replace("{", "{{").replace("}", "}}")


# (a folder with spaces works: both paths are quoted)
PATH_PREFIX = (
    ""
    if USE_CONDA
    else f'export PATH={shell_word(Path(sys.executable).parent)}:"$PATH"; '
)
# (braces doubled twice: once for the f-string, once for Snakemake's formatting of shell commands)
shell.prefix(
    f'{PATH_PREFIX}export PYTHONPATH={shell_word(SRC)}"${{{{PYTHONPATH:+:$PYTHONPATH}}}}"; '
)

import json
import re

from pgsubspaces.config import (
    IMPORT_NAME,
    ConfigError,
    RunSpec,
    analysed_steps,
    analysis_spec,
    import_specs,
    overlap_references,
    path_megabytes,
    path_runs,
    path_settings,
    pptb_entries,
    pptb_minutes,
    pptb_specs,
    run_specs,
    spectrum_runs,
    sweep_entries,
    sweep_specs,
    train_megabytes,
    validate_config,
)
from pgsubspaces.figures.figures import (
    FIGURE_TABLES,
    FIGURES,
    IMPORT_FIGURES,
    PATH_FIGURES,
    PPTB_FIGURES,
    SWEEP_FIGURES,
    caption,
)
from pgsubspaces.path.columns import PATH_TABLES
from pgsubspaces.train.pptb_settings import VARIANT_PATTERN
from pgsubspaces.sweep import failure

try:
    validate_config(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

# Every run, main study, sweep and imports, by its run id: the path segment of all its outputs. An
# import (config imports.<name>, run id imports/<name>) is exported from its model zips, never trained.
MAIN_RUNS = [spec.run_id for spec in run_specs(config).values()]
SWEEP_RUNS = [spec.run_id for spec in sweep_specs(config).values()]
IMPORTS = import_specs(config)
IMPORT_RUNS = [spec.run_id for spec in IMPORTS.values()]
# The PPTB study's base and PPTB runs (docs/pptb.md): trained and exported, compared in rules/pptb.smk.
PPTB_RUNS = [spec.run_id for spec in pptb_specs(config).values()]
RUNS = {
    spec.run_id: spec
    for specs in (run_specs(config), sweep_specs(config), pptb_specs(config), IMPORTS)
    for spec in specs.values()
}
SPECTRA = spectrum_runs(config)
RESULTS = f"results/{config['experiment']}"
LOGS = f"logs/{config['experiment']}"
ANALYSIS = analysis_spec(config)  # every analysis setting, resolved once
VARIANT = ANALYSIS.variant  # a path segment: corrected and original results never mix
TABLES = f"{RESULTS}/tables/{VARIANT}"
TASKS = "|".join(config["tasks"])
FIGURES_DIR = f"figures/{config['experiment']}"  # per experiment: a smoke run leaves the default's alone
TRAINED_RUN = (
    rf"(ppo|sac|td3)/({TASKS})/seed[0-9]+|sweep/(ppo|sac)/({TASKS})/c[0-9]+/seed[0-9]+"
    rf"|pptb/(ppo|sac|td3)/({TASKS})/(base|{VARIANT_PATTERN})/seed[0-9]+"
)
IMPORTED_RUN = (
    rf"imports/{IMPORT_NAME}"  # train and export are constrained to TRAINED_RUN
)

# The policy-path lens (docs/path.md) on the main runs that record an actor path; its tables do not depend
# on the analysis variant (the path is the training's), the cross-lens's do (it reads eigen files).
PATH_RUNS = path_runs(config)
# (?!) matches nothing: no run records a path
PATH_RUN = "|".join(re.escape(run) for run in PATH_RUNS) or "(?!)"
PATH_DIR = f"{RESULTS}/path"
LENS_TABLES = tuple(name for name in PATH_TABLES)


# The PPTB study's comparison (docs/pptb.md), per (algo, task) of config pptb.runs; a random agent per task.
PPTB_DIR = f"{RESULTS}/pptb"
PPTB_ENTRIES = pptb_entries(config)
PPTB_TASKS = sorted({entry["task"] for entry in PPTB_ENTRIES})
PPTB_TABLES = ("pptb", "pptb_aggregate", "pptb_curves")


def pptb_files():
    """The PPTB study's tables, when the config has one."""
    return [f"{PPTB_DIR}/{name}.csv" for name in PPTB_TABLES] if PPTB_RUNS else []


# A run folder trained with other settings is refused here, at DAG time: a train job refusing it would
# fail only after Snakemake deleted its training.json, and reverting the config would then retrain.
def check_run_dirs():
    from pgsubspaces.train.checkpoints import spec_conflicts

    refused = [
        f"{RESULTS}/runs/{run} ({'; '.join(problems)})"
        for run, spec in RUNS.items()
        if isinstance(spec, RunSpec)  # imports are not trained
        and (problems := spec_conflicts(f"{RESULTS}/runs/{run}", spec.to_json()))
    ]
    if refused:
        raise WorkflowError(
            "these run folders hold checkpoints trained with other settings: "
            + ", ".join(refused)
            + ". Revert the config to continue them, delete a folder to retrain it, or give the experiment"
            " another name. Only total_steps may grow (the run continues)."
        )


check_run_dirs()


# Every wildcard is constrained (ASCII digits, registered names): a target path never reaches a shell
# command as anything but a run id, a step, an algorithm or a figure name (and the commands quote them).
wildcard_constraints:
    run=f"{TRAINED_RUN}|{IMPORTED_RUN}",
    algo="ppo|sac",  # the sweep's algorithms
    step=r"[0-9]{9}",
    figure="|".join(FIGURES),


def get_spec(wildcards):
    """The RunSpec JSON of the job's run."""
    if wildcards.run not in RUNS:
        raise WorkflowError(
            f"{wildcards.run} is not among the runs of config experiment '{config['experiment']}'"
        )
    if wildcards.run in IMPORT_RUNS:
        raise WorkflowError(
            f"{wildcards.run} is imported from model zips; it is never trained"
        )
    return RUNS[wildcards.run].to_json()


def get_import(wildcards):
    if wildcards.run not in IMPORT_RUNS:
        raise WorkflowError(
            f"{wildcards.run} is not among the imports of config experiment '{config['experiment']}'"
        )
    return RUNS[wildcards.run]


def get_import_inputs(wildcards):
    """The files of an import: its zips, VecNormalize pickles and replay buffer."""
    spec = get_import(wildcards)
    inputs = {"zips": list(spec.zips)}
    if spec.vecnormalize:
        inputs["vecnormalize"] = list(spec.vecnormalize)
    if spec.replay_buffer:
        inputs["replay_buffer"] = spec.replay_buffer
    return inputs


def get_import_arguments(wildcards):
    """The export CLI's arguments for an import, a list the shell command quotes item by item."""
    spec = get_import(wildcards)
    arguments = [*spec.zips, "--task", spec.task, "--env-id", spec.env_id]
    arguments += ["--seed", str(spec.seed)]
    if spec.vecnormalize:
        arguments += ["--vecnormalize", *spec.vecnormalize]
    if spec.replay_buffer:
        arguments += ["--replay-buffer", spec.replay_buffer]
    return arguments


# Wall-clock planning for cluster jobs (minutes); one core (docs/reference.md P3: PPO ~1,400 env steps/s, SAC
# 70-85 steps/s; TD3 planned as SAC: ~250 steps/s with [64, 64] nets, less with the paper's [400, 300]),
# halved for slower nodes and evaluation, doubled again below. Locally ignored.
STEPS_PER_SECOND = {"ppo": 700, "sac": 40, "td3": 40}


def get_train_minutes(wildcards):
    spec = RUNS[wildcards.run]
    minutes = spec.total_steps / STEPS_PER_SECOND[spec.algo] / 60 + pptb_minutes(
        config, spec
    )
    return 15 + int(2 * minutes)


def get_train_mem_mb(wildcards):
    return train_megabytes(config, RUNS[wildcards.run])


def get_path_mem_mb(wildcards):
    return path_megabytes(config, RUNS[wildcards.run])


def path_run_dirs():
    return [f"{PATH_DIR}/runs/{run}" for run in PATH_RUNS]


def path_files():
    """The policy-path tables and phenomena, and the cross-lens table, when some run records a path."""
    if not PATH_RUNS:
        return []
    names = (*LENS_TABLES, "reconstruction", "path_findings")
    return [f"{PATH_DIR}/{name}.csv" for name in names] + [f"{TABLES}/crosslens.csv"]


def run_files():
    return [f"{RESULTS}/runs/{run}.h5" for run in MAIN_RUNS + IMPORT_RUNS]


def eigen_file(run, step):
    return f"{RESULTS}/eigen/{VARIANT}/{run}/step{step:09d}.h5"


def eigen_files():
    """One eigen file per analysed checkpoint of every main run and import."""
    return [
        eigen_file(run, step)
        for run in MAIN_RUNS + IMPORT_RUNS
        for step in analysed_steps(RUNS[run])
    ]


def spectrum_file(run, step):
    return f"{RESULTS}/spectra/{VARIANT}/{run}/step{step:09d}.h5"


def spectrum_files():
    """The full spectra of Fig. 1 (PPO, first seed, last checkpoint per task)."""
    return [spectrum_file(*spectrum) for spectrum in SPECTRA]


def get_run_spectrum_files(wildcards):
    return [spectrum_file(run, step) for run, step in SPECTRA if run == wildcards.run]


def get_run_eigen_files(wildcards):
    return [
        eigen_file(wildcards.run, step) for step in analysed_steps(RUNS[wildcards.run])
    ]


def run_table_dirs(runs=MAIN_RUNS + IMPORT_RUNS):
    return [f"{TABLES}/runs/{run}" for run in runs]


# The sweep's summary per (algo, task); the main runs of those are its "tuned" reference.
SWEEP_ENTRIES = sweep_entries(config)
SWEEP_KEYS = {(entry["algo"], entry["task"]) for entry in SWEEP_ENTRIES}
TUNED_RUNS = [
    run for run in MAIN_RUNS if (RUNS[run].algo, RUNS[run].task) in SWEEP_KEYS
]


def get_overlap_t1(wildcards):
    """The run's overlap references t1 (config.overlap_references decides); one argument each."""
    return [str(t1) for t1 in overlap_references(config, RUNS[wildcards.run])]


def training_summary(run):
    return f"{RESULTS}/runs/{run}/training.json"


def get_sweep_run_tables(wildcards):
    """The tables of every sweep run that finished training. Which did is known only after training
    (train is a checkpoint rule); a diverged run has no tables, its training summary says why.
    """
    files = []
    for run in SWEEP_RUNS:
        if failure(checkpoints.train.get(run=run).output.summary) is None:
            files += [f"{TABLES}/runs/{run}/{name}.csv" for name in TABLE_NAMES]
    return files


TABLE_NAMES = ("fractions", "overlaps", "phases", "curves", "spectra")


def table_files():
    return [f"{TABLES}/{name}.csv" for name in (*TABLE_NAMES, "scorecard", "accuracy")]


def get_figure_tables(wildcards):
    if wildcards.figure in SWEEP_FIGURES:
        return {"sweep": f"{TABLES}/sweep.csv"}
    if wildcards.figure in PPTB_FIGURES:
        return {
            name: f"{PPTB_DIR}/{name}.csv" for name in FIGURE_TABLES[wildcards.figure]
        }
    if wildcards.figure in FIGURE_TABLES:  # the policy-path and cross-lens figures
        return {
            name: (
                f"{TABLES}/{name}.csv"
                if name == "crosslens"
                else f"{PATH_DIR}/{name}.csv"
            )
            for name in FIGURE_TABLES[wildcards.figure]
        }
    return {name: f"{TABLES}/{name}.csv" for name in TABLE_NAMES}


def experiment_figures():
    """Every figure when the experiment trains; with imports only, those that need no learning curves,
    phases or sweep (zips carry none). A figure of one algorithm only when the experiment has its runs.
    """
    algos = {"any", *(spec.algo for spec in RUNS.values())}
    path_algos = {"any", *(RUNS[run].algo for run in PATH_RUNS)}
    if MAIN_RUNS:
        names = [n for n in FIGURES if n not in PATH_FIGURES and n not in PPTB_FIGURES]
        # the policy-path lens's figures, for the algorithms that record a path
        if PATH_RUNS:
            names += [n for n in PATH_FIGURES if figure_algo(n) in path_algos]
    else:
        names = list(IMPORT_FIGURES)
    if PPTB_RUNS:
        names += PPTB_FIGURES
    return [name for name in names if figure_algo(name) in algos]


def figure_algo(name):
    """The algorithm a figure draws, or "any" (the cross-lens figures name theirs ``algorithm``)."""
    options = FIGURES[name][1]
    return options.get("algo", options.get("algorithm", "any"))


def figure_files():
    return [f"{FIGURES_DIR}/{name}.pdf" for name in experiment_figures()]


def get_caption(wildcards):
    return caption(wildcards.figure, config)


def get_fixed(wildcards):
    """The algorithm's held sweep parameters as one JSON argument (data for the sweep, never shell text)."""
    return json.dumps(config["sweep"]["fixed"].get(wildcards.algo, {}), sort_keys=True)


def sweep_files():
    """The sweep's table and the configurations it drew."""
    algos = dict.fromkeys(RUNS[run].algo for run in SWEEP_RUNS)
    return [f"{TABLES}/sweep.csv"] + [
        f"{RESULTS}/runs/sweep/{algo}/configurations.csv" for algo in algos
    ]


def all_targets():
    return (
        run_files()
        + eigen_files()
        + spectrum_files()
        + table_files()
        + sweep_files()
        + path_files()
        + pptb_files()
        + figure_files()
    )
