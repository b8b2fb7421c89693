"""Experiment configuration: schema validation, the checkpoint grid, and one resolved spec per run.

The Snakefile validates the merged config when it loads, so a bad config fails at DAG time with the
offending key named; every training job then receives its fully resolved ``RunSpec`` as JSON.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import yaml

from pgsubspaces import netsize, sweep
from pgsubspaces.comparison.columns import BASE as PPTB_BASE
from pgsubspaces.train.pptb_settings import PPTBSettings

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"
SCHEMA_PATH = REPO_CONFIG / "schema.yaml"
REGISTRY_PATH = REPO_CONFIG / "tasks.yaml"
ALGOS = ("ppo", "sac", "td3")
OFF_POLICY = ("sac", "td3")  # replay-buffer algorithms: a replay stream, target networks

# The original's VecNormalize wrapper; gamma stays 0.99 whatever the algorithm's gamma (docs/reference.md §1.2).
VEC_NORMALIZE = {
    "norm_obs": True,
    "norm_reward": True,
    "clip_obs": 10.0,
    "clip_reward": 10.0,
    "gamma": 0.99,
    "epsilon": 1e-8,
}


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that determines one training run's numbers (device and threads aside)."""

    experiment: str
    algo: str
    task: str
    seed: int
    env_id: str
    env_kwargs: dict[str, Any]
    total_steps: int
    hyperparameters: dict[str, Any]
    policy: dict[str, Any]
    vec_normalize: dict[str, Any] | None
    checkpoint_steps: tuple[int, ...]
    eval_interval: int
    eval_episodes: int
    actor_path_every: int
    configuration: str | None = None  # a sweep configuration ("c003"), a pptb variant; None for the main study
    study: str = "sweep"  # the study a configuration belongs to: "sweep" or "pptb"
    pptb: dict[str, Any] | None = None  # PPTB settings (train/pptb.py, PPTBSettings); None: plain SB3

    def to_json(self) -> str:
        fields = dataclasses.asdict(self)
        # fields at their defaults are left out, so specs (and train jobs' params) from before them stay as they were
        for key, default in (("configuration", None), ("study", "sweep"), ("pptb", None)):
            if fields[key] == default:
                del fields[key]
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        fields = json.loads(text)
        fields["checkpoint_steps"] = tuple(fields["checkpoint_steps"])
        return cls(**fields)

    @property
    def run_id(self) -> str:
        """The run's path below runs/, eigen/<variant>/ ...: ``ppo/Walker2d/seed0`` for a main run,
        ``sweep/ppo/Walker2d/c003/seed0`` for a sweep configuration's, ``pptb/td3/Hopper/base/seed0`` for a
        PPTB study's."""
        if self.configuration is None:
            return f"{self.algo}/{self.task}/seed{self.seed}"
        return f"{self.study}/{self.algo}/{self.task}/{self.configuration}/seed{self.seed}"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge like Snakemake merges config files: dicts recursively, everything else replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml(path: str | Path) -> Any:
    """A YAML file's data; a syntax error names the file, line and column (Snakemake's own message names
    neither: "Config file is not valid JSON or YAML")."""
    try:
        with open(path) as stream:
            return yaml.safe_load(stream)
    except yaml.MarkedYAMLError as error:
        mark, context = error.problem_mark or error.context_mark, error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        message = f"{where}: not valid YAML: {error.problem or error.context}"
        if error.problem and error.context:
            message += f" ({error.context}" + (
                f" that starts at line {context.line + 1}, column {context.column + 1})" if context else ")"
            )
        raise ConfigError(message) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None


def checked_yaml(path: str | Path) -> str | Path:
    """``path`` once it parses as YAML (the Snakefile's ``configfile:``): a syntax error is named by file and
    line, which Snakemake's own message is not. Files given with --configfile Snakemake reads before the
    Snakefile; ``python -m pgsubspaces.config FILE...`` names their errors."""
    read_yaml(path)
    return path


def load_config(*paths: str | Path) -> dict[str, Any]:
    """The task registry merged with the given experiment config files, in order."""
    config: dict[str, Any] = {}
    for path in (REGISTRY_PATH, *paths):
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config file holds keys at its top level, not a {type(data).__name__}")
        config = deep_merge(config, data)
    return config


def _key(path: Iterable[Any]) -> str:
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "<top level>"


def _validator_with_defaults(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A validator that also fills in each property's ``default`` (as snakemake.utils.validate does)."""
    base = jsonschema.Draft202012Validator
    # an integer is an int: JSON schema also takes 64.0, which SB3 and range() would not
    types = base.TYPE_CHECKER.redefine(
        "integer", lambda _, instance: isinstance(instance, int) and not isinstance(instance, bool)
    )

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from base.VALIDATORS["properties"](validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults}, type_checker=types)(schema)


def _schema_message(error: jsonschema.ValidationError) -> str:
    """The validator's message; a refused key also lists the keys allowed there."""
    message = error.message
    allowed = error.schema.get("properties") if error.validator == "additionalProperties" else None
    if allowed:
        message += f" (allowed: {', '.join(allowed)})"
    return message


def validate_config(config: dict[str, Any], schema_path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """Check ``config`` against the schema and the cross-key rules; fill in defaults in place.

    Raises:
        ConfigError: naming every offending key, e.g. ``runs[0].algos[0]: 'ddpg' is not one of ...``.
    """
    schema = read_yaml(schema_path)
    errors = sorted(_validator_with_defaults(schema).iter_errors(config), key=lambda e: list(map(str, e.path)))
    if errors:
        lines = [f"config key '{_key(e.absolute_path)}': {_schema_message(e)}" for e in errors]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    config["sweep"]["fixed"] = config["sweep"]["fixed"] or {}  # null: nothing held (see the schema)
    problems = list(_cross_key_problems(config))
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


def check_fixed(algo: str, fixed: Any) -> dict[str, Any]:
    """``fixed`` as the schema's sweep.fixed.<algo> takes it (for the sweep's command line, which receives it
    as JSON); raises ConfigError naming each offending parameter."""
    if algo not in sweep.SPACES:
        raise ConfigError(f"algo {algo!r}; expected one of {sorted(sweep.SPACES)}")
    schema = read_yaml(SCHEMA_PATH)
    validator = _validator_with_defaults({"$ref": f"#/$defs/{algo}_fixed", "$defs": schema["$defs"]})
    errors = list(validator.iter_errors(fixed))
    if errors:
        lines = [f"{_key(['sweep', 'fixed', algo, *e.absolute_path])}: {_schema_message(e)}" for e in errors]
        raise ConfigError("invalid fixed parameters:\n  " + "\n  ".join(lines))
    return fixed


def checkpoint_grid(
    total_steps: int, interval: int, additional: Iterable[int] = (), dense: Mapping[str, int] | None = None
) -> tuple[int, ...]:
    """Checkpoint env steps: 0, the additional steps, every ``interval``, every ``dense["interval"]`` up to
    ``dense["until"]``, and ``total_steps``."""
    steps = {0, total_steps, *additional, *range(interval, total_steps + 1, interval)}
    if dense:
        steps.update(range(dense["interval"], min(dense["until"], total_steps) + 1, dense["interval"]))
    return tuple(sorted(steps))


def grid_of(total_steps: int, grid: Mapping[str, Any]) -> tuple[int, ...]:
    """The checkpoint steps of a ``checkpoints:`` config section."""
    return checkpoint_grid(total_steps, grid["interval"], grid.get("additional", []), grid.get("dense"))


def _algo_settings(config: dict[str, Any], task: str, algo: str) -> dict[str, Any]:
    """The registry entry of (task, algo) on top of the algorithm's defaults."""
    defaults = config["algorithms"][algo]
    entry = config["tasks"][task][algo]
    return {
        "hyperparameters": {**defaults.get("hyperparameters", {}), **entry.get("hyperparameters", {})},
        "policy": {**defaults.get("policy", {}), **entry.get("policy", {})},
        "vec_normalize": entry.get("vec_normalize", defaults.get("vec_normalize", False)),
        "total_steps": entry.get("total_steps"),
    }


def _entries(config: dict[str, Any], key: str, runs: list[dict]) -> Iterable[tuple[str, dict, str, dict]]:
    """(where, run entry, algo, settings) of every registered (task, algorithm) of ``runs``; problems aside."""
    for index, run in enumerate(runs):
        where, task = f"{key}[{index}]", run["task"]
        if task not in config["tasks"]:
            continue
        for algo in run["algos"]:
            if algo in config["tasks"][task]:
                yield where, run, algo, _algo_settings(config, task, algo)


def _entry_problems(config: dict[str, Any], key: str, runs: list[dict]) -> Iterable[str]:
    seen: dict[tuple[str, str], str] = {}
    for index, run in enumerate(runs):
        where, task = f"{key}[{index}]", run["task"]
        if task not in config["tasks"]:
            yield f"config key '{where}.task': {task!r} is not a registered task (known: {', '.join(config['tasks'])})"
            continue
        for algo in run["algos"]:
            if algo not in config["tasks"][task]:
                yield f"config key '{where}.algos': task {task!r} has no {algo!r} entry in tasks.{task}"
    for where, run, algo, settings in _entries(config, key, runs):
        task = run["task"]
        if (task, algo) in seen:
            yield f"config key '{where}': ({task}, {algo}) is already listed in {seen[task, algo]}"
        seen[task, algo] = where
        total = run.get("total_steps", settings["total_steps"])
        if total is None:
            yield f"config key 'tasks.{task}.{algo}.total_steps': missing (and {where} sets no total_steps)"
            continue
        yield from _grid_problems(config, run, where, algo, total, settings)


def _sweep_problems(config: dict[str, Any]) -> Iterable[str]:
    study = config["sweep"]
    main = run_specs(config)
    for where, run, algo, settings in _entries(config, "sweep.runs", study["runs"]):
        drawn = set(sweep.SPACES[algo])
        for group in ("hyperparameters", "policy"):
            for name in sorted(drawn & set(run.get(group, {}).get(algo, {}))):
                yield (
                    f"config key '{where}.{group}.{algo}.{name}': drawn by the sweep; "
                    f"hold it with sweep.fixed.{algo}.{name}"
                )
        total = run.get("total_steps", settings["total_steps"])
        if total is None:
            continue
        steps = grid_of(total, run.get("checkpoints", config["checkpoints"]))
        t1, t2 = run["overlap"]["t1"], run["overlap"]["t2"]
        if t1 >= t2:
            yield f"config key '{where}.overlap': t1 {t1} must come before t2 {t2}"
        for name, step in (("t1", t1), ("t2", t2)):
            if step not in steps:
                yield f"config key '{where}.overlap.{name}': {step} is not on the entry's checkpoint grid {list(steps)}"
        tuned = [spec for (a, task, _), spec in main.items() if (a, task) == (algo, run["task"])]
        for name, step in (("t1", t1), ("t2", t2)):
            if tuned and step not in tuned[0].checkpoint_steps:
                yield (
                    f"config key '{where}.overlap.{name}': {step} is not on the grid of the main {algo} runs on "
                    f"{run['task']} {list(tuned[0].checkpoint_steps)}, whose overlap the figures mark as tuned"
                )


def _cross_key_problems(config: dict[str, Any]) -> list[str]:
    main = list(_entry_problems(config, "runs", config["runs"]))
    problems = main + list(_entry_problems(config, "sweep.runs", config["sweep"]["runs"]))
    problems += _entry_problems(config, "pptb.runs", config["pptb"]["runs"])
    if not config["runs"] and not config["imports"]:
        problems.append("config key 'runs': empty, and no imports either; list runs to train or checkpoints to import")
    if main:
        return problems  # the checks below need the main runs' specs
    problems += _import_problems(config)
    problems += _sweep_problems(config)
    ppo_tasks = {task for algo, task, _ in run_specs(config) if algo == "ppo"}
    for task in config["figures"]["spectrum"]["tasks"] or []:
        if task not in ppo_tasks:
            problems.append(f"config key 'figures.spectrum.tasks': {task!r} has no PPO run in this config")
    if not problems:  # these need every run's spec, the sweep's too
        problems += [*_fixed_problems(config), *_network_problems(config), *_path_problems(config)]
        problems += _pptb_problems(config)
    return problems


def _fixed_problems(config: dict[str, Any]) -> Iterable[str]:
    """sweep.fixed values that contradict a value drawn with them (the schema checked each on its own)."""
    specs = sweep_specs(config)
    for algo, fixed in config["sweep"]["fixed"].items():
        if algo != "ppo" or not {"batch_size", "n_steps"} & set(fixed):
            continue
        for (_, task, name, _), spec in specs.items():
            batch, n_steps = spec.hyperparameters["batch_size"], spec.hyperparameters["n_steps"]
            if spec.algo == "ppo" and batch > n_steps:
                key = "n_steps" if "n_steps" in fixed else "batch_size"
                yield (
                    f"config key 'sweep.fixed.ppo.{key}': {fixed[key]} gives configuration {name} a batch_size "
                    f"{batch} above its n_steps {n_steps} (PPO's mini-batches come from one rollout of n_steps)"
                )
                break


def _analysed_networks(config: dict[str, Any]) -> list[tuple[int, str, RunSpec]]:
    """(parameter count, description, spec) of the actor and critic of every run the eigen stage analyses."""
    origin = {(algo, run["task"]): f"runs[{i}]" for i, run in enumerate(config["runs"]) for algo in run["algos"]}
    sweep_origin = {
        (algo, run["task"]): f"sweep.runs[{i}]"
        for i, run in enumerate(config["sweep"]["runs"])
        for algo in run["algos"]
    }
    networks, seen = [], set()
    for spec in [*run_specs(config).values(), *sweep_specs(config).values()]:
        task = config["tasks"][spec.task]
        counts = netsize.parameter_counts(
            spec.algo, task["obs_dim"], task["action_dim"], spec.hyperparameters, spec.policy
        )
        if spec.configuration is None:
            where = origin[spec.algo, spec.task]
        else:
            where = f"{sweep_origin[spec.algo, spec.task]}, configuration {spec.configuration}"
        for net, n in counts.items():
            if (spec.algo, spec.task, net, n) not in seen:
                seen.add((spec.algo, spec.task, net, n))
                networks.append((n, f"the {spec.algo} {net} on {spec.task} ({where})", spec))
    return networks


def arpack_minimum(wanted: int, n: int) -> int:
    """Products ARPACK takes at the least for ``wanted`` eigenpairs of an n-parameter network: eigsh's first
    Lanczos factorisation of ncv = min(n, max(2 wanted + 1, 20)) vectors, then one residual product each."""
    return min(n, max(2 * wanted + 1, 20)) + wanted


def _network_problems(config: dict[str, Any]) -> Iterable[str]:
    """analysis.k, its guard and the product budget against the parameter counts of every analysed network,
    and Fig. 1's networks against the explicit Hessian's limit: what would otherwise fail (or silently shrink
    k in) every eigen job. Counts from the registry's obs_dim and action_dim (pgsubspaces.netsize)."""
    analysis = config["analysis"]
    k, guard, budget, solver = (analysis[key] for key in ("k", "guard_eigenpairs", "max_matvecs", "solver"))
    networks = _analysed_networks(config)
    if not networks:
        return
    n, smallest, _ = min(networks, key=lambda network: network[0])
    too_small = sum(count <= k + guard for count, _, _ in networks)
    others = f"; {too_small - 1} more networks are too small" if too_small > 1 else ""
    if k >= n:
        yield (
            f"config key 'analysis.k': {k} eigenpairs do not fit {smallest}, which has {n} parameters; k must be "
            f"below the parameter count of every analysed network{others}"
        )
    elif k + guard >= n:
        yield (
            f"config key 'analysis.guard_eigenpairs': k {k} + {guard} guard eigenpairs do not fit {smallest}, which "
            f"has {n} parameters; k + guard_eigenpairs must be below the parameter count of every analysed "
            f"network{others}"
        )
    if budget is not None and solver == "lanczos" and budget < k + guard:
        yield (
            f"config key 'analysis.max_matvecs': {budget} Hessian-vector products cannot build the Krylov basis "
            f"of k {k} + guard_eigenpairs {guard} eigenpairs; the lanczos solver needs at least {k + guard}"
        )
    if budget is not None and solver == "arpack":
        needed = max(arpack_minimum(k + guard, count) for count, _, _ in networks)
        if budget < needed:
            yield (
                f"config key 'analysis.max_matvecs': {budget} Hessian-vector products are fewer than the {needed} "
                f"the arpack solver takes at the least for k {k} + guard_eigenpairs {guard} eigenpairs (its first "
                f"factorisation of max(2 (k + guard) + 1, 20) vectors, then one residual product per eigenpair)"
            )
    limit = config["figures"]["spectrum"]["max_parameters"]
    spectra = {run_id for run_id, _ in spectrum_runs(config)}
    for count, network, spec in networks:
        if spec.run_id in spectra and count > limit:
            yield (
                f"config key 'figures.spectrum.max_parameters': {limit} is below the {count} parameters of "
                f"{network}, whose full spectrum Fig. 1 shows (an explicit Hessian of n^2 entries); raise the limit "
                f"or leave {spec.task} out of figures.spectrum.tasks"
            )


def _grid_problems(config, run, where, algo, total, settings) -> Iterable[str]:
    origin = f"{where}.checkpoints" if "checkpoints" in run else "checkpoints"
    budget = f"the budget of {algo} in {where} ({total} steps)"
    grid = run.get("checkpoints", config["checkpoints"])
    if grid["interval"] > total:
        yield f"config key '{origin}.interval': {grid['interval']} exceeds {budget}"
    for step in grid.get("additional", []):
        if step > total:
            yield f"config key '{origin}.additional': step {step} exceeds {budget}"
    evaluation = run.get("evaluation", config["evaluation"])
    if evaluation["interval"] > total:
        origin_eval = f"{where}.evaluation" if "evaluation" in run else "evaluation"
        yield f"config key '{origin_eval}.interval': {evaluation['interval']} exceeds {budget}"
    hyper = {**settings["hyperparameters"], **run.get("hyperparameters", {}).get(algo, {})}
    if algo == "ppo" and hyper["batch_size"] > hyper["n_steps"]:
        batch, n_steps = hyper["batch_size"], hyper["n_steps"]
        yield f"config key '{where}.hyperparameters.ppo.batch_size': {batch} exceeds n_steps {n_steps}"
    if algo in OFF_POLICY:
        steps = grid_of(total, grid)
        widest = max(b - a for a, b in itertools.pairwise(steps))
        if widest > hyper["buffer_size"]:
            yield (
                f"config key '{origin}.interval': checkpoints {widest} steps apart exceed the {algo.upper()} "
                f"buffer_size {hyper['buffer_size']} of {where}; transitions would be lost between checkpoints"
            )


def spectrum_runs(config: dict[str, Any]) -> list[tuple[str, int]]:
    """(run id, step) of every full spectrum Fig. 1 needs: PPO, first seed, last checkpoint."""
    specs = run_specs(config)
    tasks = config["figures"]["spectrum"]["tasks"]
    tasks = list(dict.fromkeys(task for algo, task, _ in specs if algo == "ppo")) if tasks is None else tasks
    out = []
    for task in tasks:
        seed = min(seed for algo, t, seed in specs if algo == "ppo" and t == task)
        spec = specs["ppo", task, seed]
        out.append((spec.run_id, spec.checkpoint_steps[-1]))
    return out


def _run_spec(config, run, algo, seed, drawn=None, configuration=None) -> RunSpec:
    """The spec of one (run entry, algorithm, seed): registry, then the entry's overrides, then ``drawn``."""
    settings = _algo_settings(config, run["task"], algo)
    hyperparameters = {**settings["hyperparameters"], **run.get("hyperparameters", {}).get(algo, {})}
    policy = {**settings["policy"], **run.get("policy", {}).get(algo, {})}
    if drawn is not None:
        drawn_hyperparameters, drawn_policy = sweep.run_settings(algo, drawn)
        hyperparameters, policy = {**hyperparameters, **drawn_hyperparameters}, {**policy, **drawn_policy}
    total = run.get("total_steps", settings["total_steps"])
    grid = run.get("checkpoints", config["checkpoints"])
    evaluation = run.get("evaluation", config["evaluation"])
    task = config["tasks"][run["task"]]
    return RunSpec(
        experiment=config["experiment"],
        algo=algo,
        task=run["task"],
        seed=seed,
        env_id=task["env_id"],
        env_kwargs=task.get("env_kwargs", {}),
        total_steps=total,
        hyperparameters=hyperparameters,
        policy=policy,
        vec_normalize=dict(VEC_NORMALIZE) if settings["vec_normalize"] else None,
        checkpoint_steps=grid_of(total, grid),
        eval_interval=evaluation["interval"],
        eval_episodes=evaluation["episodes"],
        actor_path_every=run.get("actor_path", config["actor_path"])["every_updates"],
        configuration=configuration,
    )


def run_specs(config: dict[str, Any]) -> dict[tuple[str, str, int], RunSpec]:
    """One resolved ``RunSpec`` per (algo, task, seed) of a validated config, in config order."""
    return {
        (algo, run["task"], seed): _run_spec(config, run, algo, seed)
        for run in config["runs"]
        for algo in run["algos"]
        for seed in run.get("seeds", config["seeds"])
    }


def sweep_configurations(config: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The drawn configurations of every algorithm the sweep runs (the same draws on every task)."""
    study = config["sweep"]
    algos = dict.fromkeys(algo for run in study["runs"] for algo in run["algos"])
    return {
        algo: sweep.sample_configurations(algo, study["configurations"], study["seed"], study["fixed"].get(algo))
        for algo in algos
    }


def sweep_entries(config: dict[str, Any]) -> list[dict[str, Any]]:
    """What the sweep summary covers per (algo, task): its budget and the overlap's t1 and t2."""
    return [
        {
            "algo": algo,
            "task": run["task"],
            "steps": run.get("total_steps", _algo_settings(config, run["task"], algo)["total_steps"]),
            **run["overlap"],
        }
        for run in config["sweep"]["runs"]
        for algo in run["algos"]
    ]


def sweep_specs(config: dict[str, Any]) -> dict[tuple[str, str, str, int], RunSpec]:
    """One ``RunSpec`` per (algo, task, configuration, seed) of the random-hyperparameter sweep."""
    drawn = sweep_configurations(config)
    return {
        (algo, run["task"], name, seed): _run_spec(config, run, algo, seed, values, name)
        for run in config["sweep"]["runs"]
        for algo in run["algos"]
        for name, values in zip(sweep.configuration_names(len(drawn[algo])), drawn[algo])
        for seed in run.get("seeds", config["sweep"]["seeds"])
    }


# --- The PPTB study (docs/pptb.md): base and PPTB runs, paired by seed ----------------------------------


def pptb_settings(config: Mapping[str, Any], variant: Mapping[str, Any]) -> PPTBSettings:
    """A variant's settings on top of ``pptb.settings``; raises ValueError naming an invalid one."""
    return PPTBSettings(**{**config["pptb"]["settings"], **variant})


def _pptb_entry(run: Mapping[str, Any]) -> dict[str, Any]:
    """A pptb entry as a run entry: no actor path unless it asks (the top-level one is the main study's)."""
    return {"actor_path": {"every_updates": 0}, **run}


def pptb_specs(config: Mapping[str, Any]) -> dict[tuple[str, str, str, int], RunSpec]:
    """One ``RunSpec`` per (algo, task, base or variant name, seed) of the PPTB study, in config order."""
    specs = {}
    for run in config["pptb"]["runs"]:
        entry = _pptb_entry(run)
        for algo in run["algos"]:
            for seed in run.get("seeds", config["pptb"]["seeds"]):
                base = dataclasses.replace(_run_spec(config, entry, algo, seed, configuration=PPTB_BASE), study="pptb")
                specs[algo, run["task"], PPTB_BASE, seed] = base
                for variant in run["variants"]:
                    settings = pptb_settings(config, variant)
                    specs[algo, run["task"], settings.name, seed] = dataclasses.replace(
                        base, configuration=settings.name, pptb=settings.as_dict()
                    )
    return specs


def pptb_entries(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the PPTB tables compare per (algo, task): the variant names, seeds and budgets."""
    entries = []
    for run in config["pptb"]["runs"]:
        for algo in run["algos"]:
            total = run.get("total_steps", _algo_settings(config, run["task"], algo)["total_steps"])
            entries.append({
                "algo": algo,
                "task": run["task"],
                "variants": [pptb_settings(config, variant).name for variant in run["variants"]],
                "seeds": list(run.get("seeds", config["pptb"]["seeds"])),
                "budgets": sorted(run.get("budgets", [total])),
            })  # fmt: skip
    return entries


def _pptb_problems(config: Mapping[str, Any]) -> Iterable[str]:
    """Variants that are invalid, repeated or never step, and budgets beyond the training."""
    study = config["pptb"]
    for index, run in enumerate(study["runs"]):
        where, names = f"pptb.runs[{index}]", {}
        for number, variant in enumerate(run["variants"]):
            try:
                settings = pptb_settings(config, variant)
            except ValueError as error:
                yield f"config key '{where}.variants[{number}]': {error} (pptb.settings fills what it leaves out)"
                continue
            if settings.name in names:
                yield f"config key '{where}.variants[{number}]': the same settings as variants[{names[settings.name]}]"
            names.setdefault(settings.name, number)
            for algo in run["algos"]:
                spec = _run_spec(config, _pptb_entry(run), algo, 0)
                if actor_updates(spec) < settings.t_p:
                    yield (
                        f"config key '{where}.variants[{number}].t_p': {settings.t_p} actor updates, but the {algo} "
                        f"run on {run['task']} takes about {actor_updates(spec)}: PPTB would never step"
                    )
        for algo in run["algos"]:
            total = run.get("total_steps", _algo_settings(config, run["task"], algo)["total_steps"])
            late = [budget for budget in run.get("budgets", []) if budget > total]
            if late:
                yield f"config key '{where}.budgets': {late} beyond the {algo} run's total_steps {total}"


# --- Imported runs: SB3 model zips trained elsewhere (config ``imports``) --------------------------------

IMPORT_NAME = r"[A-Za-z0-9_-]+"  # the schema's pattern too: an import's name is a path segment
GLOB_CHARACTERS = frozenset("*?[")


@dataclasses.dataclass(frozen=True)
class ImportSpec:
    """An imported run (config ``imports.<name>``): one checkpoint per model zip, no training and so no
    learning curves. ``zips`` and ``vecnormalize`` are paired in order; ``checkpoint_steps`` are the zips'
    ``num_timesteps``, read at DAG time."""

    name: str
    algo: str
    task: str  # the registry task, or the env id when the import gives only that: the tables' task column
    env_id: str
    seed: int
    zips: tuple[str, ...]
    vecnormalize: tuple[str, ...] | None
    replay_buffer: str | None
    checkpoint_steps: tuple[int, ...]

    @property
    def run_id(self) -> str:
        return f"imports/{self.name}"


def zip_header(path: str | Path) -> tuple[int, str | None]:
    """(num_timesteps, algorithm or None) of an SB3 model zip, from its ``data`` member read as plain JSON
    (never SB3's loader, which unpickles). Raises ValueError with what is wrong."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except KeyError:
        raise ValueError("has no 'data' member; not a stable-baselines3 model zip") from None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"is not a readable stable-baselines3 model zip ({error})") from None
    steps = data.get("num_timesteps") if isinstance(data, dict) else None
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"has no valid num_timesteps in its 'data' member ({steps!r})")
    policy = data.get("policy_class")
    module = policy.get("__module__", "") if isinstance(policy, dict) else ""
    if module.startswith("stable_baselines3.sac."):
        return steps, "sac"
    if module.startswith("stable_baselines3.td3."):
        return steps, "td3"
    if module.startswith("stable_baselines3.common.") and {"clip_range", "n_epochs"} <= set(data):
        return steps, "ppo"
    return steps, None


def _natural_key(path: str) -> list:
    """Numbers in a name compared as numbers: rl_model_2000_steps before rl_model_10000_steps."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def _files(value: str | list[str], where: str) -> tuple[list[str], list[str]]:
    """(paths, problems) of a list of paths or one glob pattern (matches in natural order)."""
    import glob

    if isinstance(value, str):
        if GLOB_CHARACTERS & set(value):
            matches = sorted((m for m in glob.glob(value) if Path(m).is_file()), key=_natural_key)
            if not matches:
                return [], [f"config key '{where}': no file matches {value!r} (relative to {Path.cwd()})"]
            return matches, []
        value = [value]
    problems = [
        f"config key '{where}[{i}]': no such file {path!r} (relative to {Path.cwd()})"
        for i, path in enumerate(value)
        if not Path(path).is_file()
    ]
    return list(value), problems


def _resolve_import(config: Mapping[str, Any], name: str) -> tuple[ImportSpec | None, list[str]]:
    """The spec of one import, or None and every problem found (files, registry, counts, algorithm)."""
    entry, where = config["imports"][name], f"imports.{name}"
    problems = []
    task, env_id = entry.get("task"), entry.get("env_id")
    if task is None and env_id is None:
        problems.append(f"config key '{where}': give its task (a key of the task registry) or its env_id")
    elif task is not None and task not in config["tasks"]:
        problems.append(
            f"config key '{where}.task': {task!r} is not a registered task (known: {', '.join(config['tasks'])}); "
            "give a registered task or its env_id"
        )
    zips, zip_problems = _files(entry["zips"], f"{where}.zips")
    problems += zip_problems
    steps: dict[str, int] = {}
    algos: dict[str, str | None] = {}
    if not zip_problems:
        for index, path in enumerate(zips):
            key = f"{where}.zips" + (f"[{index}]" if isinstance(entry["zips"], list) else f" ({path})")
            try:
                steps[path], algos[path] = zip_header(path)
            except ValueError as error:
                problems.append(f"config key '{key}': {path} {error}")
    if len(steps) == len(zips) and zips:
        by_step: dict[int, str] = {}
        for path in zips:
            if steps[path] in by_step:
                problems.append(
                    f"config key '{where}.zips': {by_step[steps[path]]} and {path} both hold step {steps[path]} "
                    "(num_timesteps); give one zip per checkpoint"
                )
            by_step[steps[path]] = path
        if isinstance(entry["zips"], str):  # a glob: its matches in step order
            zips = sorted(zips, key=steps.__getitem__)
    read = {algo for algo in algos.values() if algo is not None}
    algo = entry.get("algo")
    if len(read) > 1:
        problems.append(f"config key '{where}.zips': zips of different algorithms mixed; one import is one run")
    elif read and algo is not None and read != {algo}:
        problems.append(f"config key '{where}.algo': {algo!r}, but the zips hold {next(iter(read))} models")
    elif len(steps) == len(zips) and None in algos.values() and algo is None:
        unknown = next(path for path, found in algos.items() if found is None)
        problems.append(
            f"config key '{where}.algo': cannot tell the algorithm from {unknown}; set algo (ppo, sac or td3)"
        )
    algo = algo if algo is not None else next(iter(read), None)
    vecnormalize = None
    if "vecnormalize" in entry:
        vecnormalize, vn_problems = _files(entry["vecnormalize"], f"{where}.vecnormalize")
        problems += vn_problems
        if not vn_problems and not zip_problems and len(vecnormalize) != len(zips):
            problems.append(
                f"config key '{where}.vecnormalize': {len(vecnormalize)} files for {len(zips)} zips; "
                "give one per zip, in the zips' order, or none"
            )
    replay = entry.get("replay_buffer")
    if replay is not None:
        if not Path(replay).is_file():
            problems.append(f"config key '{where}.replay_buffer': no such file {replay!r} (relative to {Path.cwd()})")
        if algo == "ppo":
            problems.append(f"config key '{where}.replay_buffer': a replay buffer only goes with SAC or TD3 zips")
    if problems:
        return None, problems
    task_label = task if task is not None else env_id
    spec = ImportSpec(
        name=name,
        algo=algo,
        task=task_label,
        env_id=env_id if env_id is not None else config["tasks"][task]["env_id"],
        seed=entry["seed"],
        zips=tuple(zips),
        vecnormalize=tuple(vecnormalize) if vecnormalize is not None else None,
        replay_buffer=replay,
        checkpoint_steps=tuple(sorted(steps.values())),
    )
    return spec, []


def _import_problems(config: Mapping[str, Any]) -> Iterable[str]:
    specs = {}
    for name in config["imports"]:
        spec, problems = _resolve_import(config, name)
        yield from problems
        if spec is not None:
            specs[name] = spec
    # The tables and figures tell runs apart by (algo, task, seed): same triple, same run.
    seen = {(s.algo, s.task, s.seed): f"runs ({s.run_id})" for s in run_specs(config).values()}
    for name, spec in specs.items():
        identity = (spec.algo, spec.task, spec.seed)
        if identity in seen:
            yield (
                f"config key 'imports.{name}.seed': {spec.algo} on {spec.task} with seed {spec.seed} is already "
                f"{seen[identity]}; the tables would mix the two, give another seed"
            )
        seen[identity] = f"imports.{name}"


def import_specs(config: Mapping[str, Any]) -> dict[str, ImportSpec]:
    """One ``ImportSpec`` per import of a validated config, in config order."""
    specs = {}
    for name in config["imports"]:
        spec, problems = _resolve_import(config, name)
        if spec is None:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
        specs[name] = spec
    return specs


# --- The analysis: one resolved spec per experiment ------------------------------------------------------

# AnalysisSpec field -> its key in the config; every default is the schema's.
ANALYSIS_KEYS: dict[str, tuple[str, ...]] = {
    **{
        name: ("analysis", name)
        for name in (
            "variant",
            "ppo_samples",
            "sac_fresh_samples",
            "k",
            "solver",
            "tol",
            "subspace_tol",
            "guard_eigenpairs",
            "max_matvecs",
            "dtype",
            "chunk_size",
            "memory_budget_gb",
            "device",
            "seed",
        )
    },
    "k_levels": ("tables", "k_levels"),
    "smoothing_steps": ("tables", "smoothing_steps"),
    "training_threshold": ("tables", "training_threshold"),
    "convergence_threshold": ("tables", "convergence_threshold"),
    "control_seed": ("tables", "seed"),
    "spectrum_samples": ("figures", "spectrum", "samples"),
    "spectrum_max_parameters": ("figures", "spectrum", "max_parameters"),
}

# What each stage reads: a job's params hold only these, so that changing a tables setting never reruns
# an eigen job (Snakemake reruns a job whose params changed).
STAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "data": ("variant", "ppo_samples", "sac_fresh_samples", "seed"),
    "eigen": (
        "variant",
        "k",
        "solver",
        "tol",
        "subspace_tol",
        "guard_eigenpairs",
        "max_matvecs",
        "dtype",
        "chunk_size",
        "memory_budget_gb",
        "device",
        "seed",
        "k_levels",
    ),
    "spectrum": (
        "variant",
        "dtype",
        "chunk_size",
        "memory_budget_gb",
        "device",
        "spectrum_samples",
        "spectrum_max_parameters",
    ),
    "tables": ("k_levels", "smoothing_steps", "training_threshold", "convergence_threshold", "control_seed"),
}


@dataclasses.dataclass(frozen=True)
class AnalysisSpec:
    """Every setting of the data, eigen, spectrum and tables stages, resolved once from the validated
    config (the schema holds each default; see ``ANALYSIS_KEYS`` for the key of each field)."""

    variant: str
    ppo_samples: int
    sac_fresh_samples: int
    k: int
    solver: str
    tol: float
    subspace_tol: float
    guard_eigenpairs: int
    max_matvecs: int | None
    dtype: str
    chunk_size: int
    memory_budget_gb: float | None
    device: str
    seed: int
    k_levels: tuple[int, ...]
    smoothing_steps: float
    training_threshold: float
    convergence_threshold: float
    control_seed: int
    spectrum_samples: int | None
    spectrum_max_parameters: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AnalysisSpec:
        """The spec of a validated config (defaults filled in)."""
        values = {}
        for name, path in ANALYSIS_KEYS.items():
            value: Any = config
            for part in path:
                value = value[part]
            values[name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None = None) -> AnalysisSpec:
        """The spec of some fields (e.g. a stage's JSON, or a user's ``{"k": 20}``), the rest the schema's
        defaults; validated by the schema like a config, unknown fields refused."""
        settings = dict(settings or {})
        unknown = sorted(set(settings) - set(ANALYSIS_KEYS))
        if unknown:
            raise ConfigError(f"unknown analysis setting(s) {unknown}; known: {', '.join(ANALYSIS_KEYS)}")
        sections: dict[str, Any] = {"analysis": {}, "tables": {}, "figures": {"spectrum": {}}}
        for name, value in settings.items():
            *parents, key = ANALYSIS_KEYS[name]
            target = sections
            for part in parents:
                target = target[part]
            target[key] = list(value) if isinstance(value, tuple) else value
        with open(SCHEMA_PATH) as stream:
            schema = yaml.safe_load(stream)
        section_schema = {
            "type": "object",
            "properties": {name: schema["properties"][name] for name in sections},
            "$defs": schema["$defs"],
        }
        errors = list(_validator_with_defaults(section_schema).iter_errors(sections))
        if errors:
            lines = [f"analysis setting '{_key(e.absolute_path)}': {_schema_message(e)}" for e in errors]
            raise ConfigError("invalid analysis settings:\n  " + "\n  ".join(lines))
        return cls.from_config(sections)

    @classmethod
    def from_json(cls, text: str | None) -> AnalysisSpec:
        return cls.from_settings(json.loads(text) if text else {})

    def stage_json(self, stage: str) -> str:
        """The fields ``stage`` reads, as JSON (a job's params)."""
        fields = dataclasses.asdict(self)
        return json.dumps({name: fields[name] for name in STAGE_FIELDS[stage]}, sort_keys=True)

    @property
    def eigen_levels(self) -> tuple[int, ...]:
        """The subspace dimensions whose accuracy the solver works towards: the k levels up to k, and k."""
        return tuple(sorted({level for level in self.k_levels if level <= self.k} | {self.k}))


PATH_STAGES = {  # the settings each policy-path CLI reads (config path.* and crosslens.*)
    "lens": ("periods", "betas", "components", "detour_top_fraction", "histogram_bins"),
    "reconstruction": ("periods", "ranks", "policies_per_period", "episodes", "seed"),
    "crosslens": ("window_snapshots", "ranks", "ks"),
}


def path_runs(config: Mapping[str, Any]) -> list[str]:
    """The main runs that record an actor path, and so go through the policy-path lens."""
    return [spec.run_id for spec in run_specs(config).values() if spec.actor_path_every > 0]


def actor_updates(spec: RunSpec) -> int:
    """Roughly how many gradient updates the actor of a run takes (plans the path jobs' memory)."""
    hyper, steps = spec.hyperparameters, spec.total_steps
    if spec.algo == "ppo":
        return (steps // hyper["n_steps"]) * hyper["n_epochs"] * -(-hyper["n_steps"] // hyper["batch_size"])
    trained = max(0, steps - hyper["learning_starts"])
    gradient_steps = hyper["gradient_steps"] if hyper["gradient_steps"] > 0 else hyper["train_freq"]
    return trained * gradient_steps // hyper["train_freq"] // hyper.get("policy_delay", 1)


def path_megabytes(config: Mapping[str, Any], spec: RunSpec) -> int:
    """Memory a path job of the run needs: the float32 path and its float64 copy for the SVD, twice over."""
    task = config["tasks"][spec.task]
    n = netsize.parameter_counts(spec.algo, task["obs_dim"], task["action_dim"], spec.hyperparameters, spec.policy)
    snapshots = actor_updates(spec) // max(spec.actor_path_every, 1) + 1
    return 1000 + int(snapshots * n["actor"] * (4 + 2 * 8) / 1e6)


def _actor_size(config: Mapping[str, Any], spec: RunSpec) -> int:
    task = config["tasks"][spec.task]
    return netsize.parameter_counts(spec.algo, task["obs_dim"], task["action_dim"], spec.hyperparameters, spec.policy)[
        "actor"
    ]


def train_megabytes(config: Mapping[str, Any], spec: RunSpec) -> int:
    """Memory a training job needs: 4 GB (the replay buffers of the registry's budgets), plus PPTB's float32 FIFO
    three times over (the rows, their stack for a PPTB step, the copy a checkpoint writes)."""
    if spec.pptb is None:
        return 4000
    return 4000 + int(3 * spec.pptb["buffer_size"] * _actor_size(config, spec) * 4 / 1e6)


PPTB_SECONDS_PER_ENTRY = 3e-11  # a PPTB step costs ~ n^2 m of these on one CPU core (benchmarks/pptb_step.py)


def pptb_minutes(config: Mapping[str, Any], spec: RunSpec) -> int:
    """What PPTB adds to a training's wall clock on CPU: steps x n^2 m (the Gram product dominates)."""
    if spec.pptb is None:
        return 0
    steps = actor_updates(spec) // spec.pptb["t_p"]
    rows = min(spec.pptb["buffer_size"], actor_updates(spec) // spec.pptb["t_s"] + 1)
    return int(steps * PPTB_SECONDS_PER_ENTRY * rows**2 * _actor_size(config, spec) / 60)


def path_settings(config: Mapping[str, Any], stage: str) -> str:
    """The JSON settings of one policy-path stage, from a validated config (defaults filled in)."""
    section = {
        "lens": config["path"],
        "reconstruction": {"periods": config["path"]["periods"], **config["path"]["reconstruction"]},
        "crosslens": {
            **config["crosslens"],
            "ks": [k for k in config["crosslens"]["ks"] if k <= config["analysis"]["k"]],
        },
    }[stage]
    return json.dumps({key: section[key] for key in PATH_STAGES[stage]}, sort_keys=True)


def _path_problems(config: Mapping[str, Any]) -> Iterable[str]:
    td3 = sorted({spec.task for spec in run_specs(config).values() if spec.algo == "td3"})
    if td3 and config["analysis"]["variant"] == "original":
        yield (
            f"config key 'analysis.variant': 'original' reproduces the paper code's PPO and SAC analysis; it has no "
            f"TD3, whose runs on {', '.join(td3)} would fail. Use 'corrected' or leave TD3 out"
        )
    if not path_runs(config):
        return
    if not any(k <= config["analysis"]["k"] for k in config["crosslens"]["ks"]):
        yield (
            f"crosslens.ks {config['crosslens']['ks']}: every level exceeds analysis.k = {config['analysis']['k']},"
            " so the cross-lens would have no Hessian subspace to compare"
        )


def analysis_spec(config: Mapping[str, Any]) -> AnalysisSpec:
    return AnalysisSpec.from_config(config)


def sample_seed(analysis_seed: int, run_seed: int, step: int) -> int:
    """The seed of one checkpoint's analysis: reproducible, and different across run seeds and steps
    (numpy's SeedSequence mixes the three; docs/hdf5.md, "Seeds")."""
    return int(np.random.SeedSequence([analysis_seed, max(run_seed, 0), step]).generate_state(1)[0])


def analysed_steps(spec: RunSpec | ImportSpec) -> tuple[int, ...]:
    """The checkpoints a run analyses: all of a main run's and an import's; a sweep run's after step 0 (the
    initialisation, which the sweep summary leaves out)."""
    if isinstance(spec, ImportSpec):
        return spec.checkpoint_steps
    return tuple(step for step in spec.checkpoint_steps if step > 0 or spec.configuration is None)


def overlap_references(config: Mapping[str, Any], spec: RunSpec | ImportSpec) -> tuple[int, ...]:
    """The overlap's t1 values of a run, those on its grid: a sweep run's entry t1 only; a main run's
    ``tables.overlap_t1``, the figures' t1 and the t1 of a sweep entry that takes it as its tuned run. An
    import's steps are whatever its zips hold, so it also takes its first step, its first step after 0 (Fig.
    12) and the step nearest to ``figures.overlap_t1`` (Fig. 3)."""
    configured = {*config["tables"]["overlap_t1"], config["figures"]["overlap_t1"]}
    if isinstance(spec, ImportSpec):
        steps = spec.checkpoint_steps
        nearest = min(steps, key=lambda step: abs(step - config["figures"]["overlap_t1"]))
        after_zero = [step for step in steps if step > 0][:1]
        return tuple(sorted((configured & set(steps)) | {steps[0], nearest, *after_zero}))
    sweep_t1 = {(e["algo"], e["task"]): e["t1"] for e in sweep_entries(config)}
    if spec.configuration is not None:
        wanted = {sweep_t1[spec.algo, spec.task]}
    else:
        wanted = set(configured)
        if (spec.algo, spec.task) in sweep_t1:
            wanted.add(sweep_t1[spec.algo, spec.task])
    return tuple(sorted(wanted & set(analysed_steps(spec))))


def main(argv: list[str] | None = None) -> None:
    """Check experiment config files as the workflow will (YAML syntax with file and line, then the schema
    and the cross-key rules): Snakemake itself stops at a YAML error in a --configfile without naming it."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("files", nargs="+", help="config files, merged in order over config/tasks.yaml")
    args = parser.parse_args(argv)
    try:
        validate_config(load_config(*args.files))
    except (ConfigError, OSError) as error:
        sys.exit(f"error: {error}")
    print(f"ok: {' '.join(args.files)}")


if __name__ == "__main__":
    main()
