"""Config validation names the offending key; the registry resolves to the paper's grid."""

from __future__ import annotations

import copy

import pytest
from conftest import REPO, copy_workflow, job_counts, snakemake

from pgsubspaces.config import (
    AnalysisSpec,
    ConfigError,
    analysed_steps,
    analysis_spec,
    checkpoint_grid,
    load_config,
    overlap_references,
    path_runs,
    pptb_entries,
    pptb_minutes,
    pptb_specs,
    run_specs,
    sample_seed,
    train_megabytes,
    validate_config,
)


def config(name: str = "smoke.yaml") -> dict:
    return validate_config(load_config(REPO / "config" / name))


def test_checkpoint_grid_of_the_paper():
    grid = checkpoint_grid(1_000_000, 50_000, [10_000])
    assert grid[:4] == (0, 10_000, 50_000, 100_000) and grid[-1] == 1_000_000
    assert len(grid) == 22  # "about 2 + T/50k" checkpoints per run (docs/reference.md §13)
    assert checkpoint_grid(5000, 2048) == (0, 2048, 4096, 5000)  # the budget's end is always a checkpoint


def test_paper_config_is_the_paper_grid():
    specs = run_specs(config("paper.yaml"))
    assert len(specs) == 250  # (13 PPO + 12 SAC tasks) x 10 seeds
    assert ("sac", "FetchPush", 0) not in specs
    walker = specs["ppo", "Walker2d", 3]
    assert walker.env_id == "Walker2d-v5" and walker.total_steps == 3_000_000
    assert walker.hyperparameters["n_steps"] == 512 and walker.hyperparameters["learning_rate"] == 5.05041e-5
    assert walker.vec_normalize["gamma"] == 0.99 and walker.policy["net_arch"] == {"pi": [64, 64], "vf": [64, 64]}
    lunar = specs["sac", "LunarLanderContinuous", 0]
    assert lunar.policy["net_arch"] == [400, 300] and lunar.hyperparameters["ent_coef"] == "auto"
    assert lunar.vec_normalize is None and lunar.checkpoint_steps[:3] == (0, 10_000, 20_000)


# The paper's analysis (docs/reference.md §4.1, §5.2, §6.2, §7, §8.1 and Sec. 4.3 of the paper), field by field.
PAPER_ANALYSIS = {
    "variant": "corrected",  # DESIGN: the corrected losses by default; "original" reproduces the defects
    "ppo_samples": 1_000_000,
    "sac_fresh_samples": 50_000,
    "k": 100,
    "solver": "lanczos",
    "tol": 1e-4,
    "subspace_tol": 0.1,  # ours: the paper reports no subspace accuracy
    "guard_eigenpairs": 5,
    "max_matvecs": None,
    "dtype": "float32",
    "chunk_size": 16384,
    "memory_budget_gb": None,  # auto: the device decides, never a laptop value on a GPU
    "device": "auto",
    "seed": 0,
    "k_levels": (1, 2, 5, 10, 20, 50, 100),
    "smoothing_steps": 20_000,
    "training_threshold": 0.1,
    "convergence_threshold": 0.9,
    "control_seed": 0,
    "spectrum_samples": None,  # Fig. 1 from all 10^6 samples
    "spectrum_max_parameters": 10_000,
}


def test_the_paper_config_resolves_to_the_papers_analysis():
    paper = config("paper.yaml")
    assert analysis_spec(paper) == AnalysisSpec(**PAPER_ANALYSIS)
    assert paper["figures"]["overlap_t1"] == 100_000 and paper["figures"]["spectrum"]["tasks"] == [
        "FingerSpin",
        "Walker2d",
    ]
    specs = run_specs(paper)
    walker = specs["ppo", "Walker2d", 0]
    dense = tuple(range(0, 500_001, 10_000))
    assert walker.checkpoint_steps[: len(dense)] == dense  # every 10k to 500k ...
    assert walker.checkpoint_steps[len(dense) :] == tuple(range(550_000, 3_000_001, 50_000))  # ... then every 50k
    assert overlap_references(paper, walker) == (0, 10_000, 50_000, 100_000, 200_000, 500_000, 1_000_000)
    pendulum = specs["sac", "Pendulum", 0]  # a 300k budget: the t1 beyond it are left out
    assert overlap_references(paper, pendulum) == (0, 10_000, 50_000, 100_000, 200_000)


def test_an_experiment_config_never_takes_the_default_configs_values(tmp_path):
    """The default experiment's laptop values (k 50, 16,384 samples) stay out of any other experiment."""
    laptop = analysis_spec(config("config.yaml"))
    assert (laptop.k, laptop.ppo_samples) == (50, 16_384)
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "mine.yaml").write_text(
        "experiment: mine\nseeds: [0]\nruns: [{task: Pendulum, algos: [ppo], total_steps: 2048}]\n"
        "checkpoints: {interval: 1024, additional: []}\nevaluation: {interval: 1024, episodes: 1}\nsweep: {runs: []}\n"
    )
    target = "results/mine/eigen/corrected/ppo/Pendulum/seed0/step000001024.h5"
    dry = snakemake(workdir, target, "-n", "--configfile", "mine.yaml").stdout
    assert '"k": 100' in dry and '"ppo_samples": 1000000' in dry and '"k": 50' not in dry
    layered = snakemake(workdir, target, "-n", "--configfile", "config/config.yaml", "mine.yaml").stdout
    # building on the default experiment is explicit
    assert '"k": 50' in layered and '"ppo_samples": 16384' in layered


def test_analysis_settings_are_validated_by_the_schema():
    assert AnalysisSpec.from_settings({"k": 20}) == AnalysisSpec(**{**PAPER_ANALYSIS, "k": 20})
    with pytest.raises(ConfigError, match=r"analysis setting 'analysis\.k': 0 is less than the minimum"):
        AnalysisSpec.from_settings({"k": 0})
    with pytest.raises(ConfigError, match=r"unknown analysis setting\(s\) \['kk'\]"):
        AnalysisSpec.from_settings({"kk": 3})
    spec = AnalysisSpec.from_settings({"k": 7, "k_levels": (1, 5, 10)})
    assert AnalysisSpec.from_json(spec.stage_json("eigen")).k == 7 and spec.eigen_levels == (1, 5, 7)


def test_analysis_seeds_differ_across_runs_and_checkpoints():
    seeds = {sample_seed(0, run_seed, step) for run_seed in range(3) for step in (0, 1000, 2000)}
    assert len(seeds) == 9 and sample_seed(0, 1, 1000) == sample_seed(0, 1, 1000)
    assert sample_seed(1, 1, 1000) != sample_seed(0, 1, 1000)


def test_defaults_are_filled_in():
    cfg = load_config(REPO / "config" / "smoke.yaml")
    del cfg["actor_path"], cfg["device"]
    validate_config(cfg)
    assert cfg["actor_path"] == {"every_updates": 0} and cfg["device"] == "auto"


def broken(change) -> dict:
    cfg = copy.deepcopy(load_config(REPO / "config" / "smoke.yaml"))
    change(cfg)
    return cfg


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda c: c["runs"][0].update(task="Atari"), r"runs\[0\]\.task': 'Atari' is not a registered task"),
        (lambda c: c["runs"][1].update(algos=["ddpg"]), r"runs\[1\]\.algos\[0\]': 'ddpg' is not one of"),
        (lambda c: c["runs"][0].update(total_steps=-5), r"runs\[0\]\.total_steps': -5 is less than the minimum"),
        (
            lambda c: c["runs"][0]["checkpoints"].update(interval=4096),
            r"runs\[0\]\.checkpoints\.interval': 4096 exceeds",
        ),
        (
            lambda c: c["runs"][1]["checkpoints"].update(additional=[700]),
            r"runs\[1\]\.checkpoints\.additional': step 700",
        ),
        (lambda c: c["evaluation"].update(interval=10_000), r"'evaluation\.interval': 10000 exceeds"),
        (
            lambda c: c["runs"][0]["hyperparameters"]["ppo"].update(n_stepz=3),
            r"runs\[0\]\.hyperparameters\.ppo'.*'n_stepz'",
        ),
        (
            lambda c: c["runs"].append({"task": "Pendulum", "algos": ["ppo"]}),
            r"runs\[2\]': \(Pendulum, ppo\) is already",
        ),
        (lambda c: c["runs"].append({"task": "FetchPush", "algos": ["sac"]}), r"task 'FetchPush' has no 'sac' entry"),
        (lambda c: c.update(seeds=[]), r"'seeds': \[\] should be non-empty"),
        (lambda c: c.update(experimnt="x"), r"'<top level>'.*'experimnt' was unexpected"),
        (
            lambda c: c["runs"][1]["hyperparameters"]["sac"].update(buffer_size=100),
            r"runs\[1\]\.checkpoints\.interval': checkpoints 300 steps apart exceed the SAC buffer_size 100",
        ),
        (
            lambda c: c.setdefault("figures", {}).update(spectrum={"tasks": ["Walker2d"]}),
            r"'figures\.spectrum\.tasks': 'Walker2d' has no PPO run",
        ),
        (
            lambda c: (
                c["runs"].append({"task": "Pendulum", "algos": ["td3"], "total_steps": 2048}),
                c["analysis"].update(variant="original"),
            ),
            r"'analysis\.variant': 'original' .* no TD3, whose runs on Pendulum",
        ),
        (
            lambda c: c["sweep"].update(runs=[{"task": "Pendulum", "algos": ["td3"]}]),
            r"sweep\.runs\[0\]\.algos\[0\]'.*'td3' is not one of \['ppo', 'sac'\]",
        ),
    ],
)
def test_bad_config_names_the_key(change, key):
    with pytest.raises(ConfigError, match=key):
        validate_config(broken(change))


def test_snakemake_rejects_a_bad_config_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "bad.yaml").write_text("runs:\n  - {task: Pendulum, algos: [ppo], total_steps: 0}\n")
    result = snakemake(workdir, "--cores", "1", "--configfile", "config/smoke.yaml", "bad.yaml", check=False)
    assert result.returncode != 0
    assert "config key 'runs[0].total_steps': 0 is less than the minimum of 1" in result.stdout + result.stderr
    assert not (workdir / "results").exists() and not (workdir / "logs").exists()


def test_path_lens_paper_config_lists_every_job(tmp_path):
    """The policy-path paper's runs at its scale, both lenses: every training, export, path and eigen job."""
    paper = config("paper-path.yaml")
    specs = run_specs(paper)
    assert len(specs) == 24 and {spec.algo for spec in specs.values()} == {"td3", "sac"}
    assert all(spec.actor_path_every == 25 for spec in specs.values())
    assert len(path_runs(paper)) == 24
    assert specs["td3", "Hopper", 2].total_steps == 1_000_000
    eigen = sum(len(analysed_steps(spec)) for spec in specs.values())
    # the PPTB study (Tables 1-2): base and five r_t per (algorithm, task), 6 seeds, no actor path, every 5k steps
    study = pptb_specs(paper)
    assert len(study) == 8 * 6 * 6 and {s.configuration.split("-")[0] for s in study.values()} == {
        "base", "rt8", "rt16", "rt32", "rt64", "rt128"}  # fmt: skip
    assert all(s.actor_path_every == 0 and s.eval_interval == 5000 and s.eval_episodes == 10 for s in study.values())
    td3 = study["td3", "Ant", "rt64-rb2-pb0.01-ts25-tp1000-k2000", 5]
    assert td3.total_steps == 1_000_000 and td3.pptb == {
        "r_t": 64, "p_b": 0.01, "r_b": 2, "t_s": 25, "t_p": 1000, "buffer_size": 2000}  # fmt: skip
    budgets = {(e["algo"], e["task"]): e["budgets"] for e in pptb_entries(paper)}
    assert budgets["sac", "WalkerWalk"] == [100_000, 500_000] and budgets["td3", "Hopper"] == [1_000_000]
    assert train_megabytes(paper, td3) > 4000 + 3 * 2000 * 4 * 100_000 / 1e6  # the FIFO of a [400, 300] actor
    assert pptb_minutes(paper, td3) > 60  # 495 PPTB steps of a 2000-row FIFO on one core
    workdir = copy_workflow(tmp_path / "wf")
    counts = job_counts(snakemake(workdir, "-n", "--configfile", "config/paper-path.yaml").stdout)
    for rule in ("path_lens", "path_reconstruction", "crosslens", "run_tables"):
        assert counts[rule] == 24, rule
    assert counts["train"] == counts["export"] == 24 + 288
    assert counts["eigen"] == counts["data"] == eigen == 438
    assert counts["pptb_random"] == 8 and counts["pptb_tables"] == 1
    assert counts["figure"] > 0 and counts["path_findings"] == counts["crosslens_tables"] == 1
