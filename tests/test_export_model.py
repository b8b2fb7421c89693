"""Checkpoints trained elsewhere (plain SB3 zips) export into the same contract."""

from __future__ import annotations

import numpy as np
import torch as th
from conftest import BufferSnapshots, copy_workflow, snakemake
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback

from pgsubspaces.analysis.data import _analysis_env
from pgsubspaces.export.export import main as export_main
from pgsubspaces.export.runfile import RunFile, build_policy
from pgsubspaces.train.agents import new_agent
from pgsubspaces.train.envs import make_vec_env

SAC_SETTINGS = {"learning_starts": 50, "buffer_size": 200, "batch_size": 32}


def test_sac_zips_with_replay_buffer(tmp_path):
    th.set_num_threads(1)
    model = new_agent("sac", make_vec_env("Pendulum-v1"), SAC_SETTINGS, {"net_arch": [32, 32]}, seed=3, device="cpu")
    snapshots = BufferSnapshots("sac", [300])
    saver = CheckpointCallback(save_freq=150, save_path=str(tmp_path), save_replay_buffer=True)
    model.learn(300, callback=CallbackList([snapshots, saver]))
    zips = [tmp_path / "rl_model_300_steps.zip", tmp_path / "rl_model_150_steps.zip"]  # any order
    export_main(
        [
            "model",
            *map(str, zips),
            "--replay-buffer",
            str(tmp_path / "rl_model_replay_buffer_300_steps.pkl"),
            "--task",
            "Pendulum",
            "--env-id",
            "Pendulum-v1",
            "--seed",
            "3",
            "--out",
            str(tmp_path / "run.h5"),
        ]
    )
    with RunFile(tmp_path / "run.h5") as run:
        assert run.steps.tolist() == [150, 300] and run.algo == "sac" and run.attrs["seed"] == 3
        np.testing.assert_array_equal(run.vector(300, "actor"), snapshots.actors[300])
        replay = run.replay(300)  # 299 transitions in a 200-slot buffer: wrapped
        for field, theirs in snapshots.buffers[300].items():
            np.testing.assert_array_equal(replay[field], theirs.astype(replay[field].dtype))
        obs = np.random.default_rng(0).uniform(-1, 1, (64, 3)).astype(np.float32)
        saved = SAC.load(tmp_path / "rl_model_300_steps.zip", device="cpu")  # `model` has trained one step more
        actions, _ = saved.policy.predict(obs, deterministic=True)
        np.testing.assert_array_equal(build_policy(run, 300).predict(obs, deterministic=True)[0], actions)
        assert run.config("hyperparameters")["buffer_size"] == 200 and run.config("policy")["net_arch"] == [32, 32]
        assert run.checkpoint_attrs(300)["log_ent_coef"] == saved.log_ent_coef.item()


def test_ppo_zip_with_vecnormalize_through_the_rule(tmp_path):
    venv = make_vec_env("Pendulum-v1", vec_normalize={"norm_obs": True, "norm_reward": True, "gamma": 0.99})
    model = new_agent("ppo", venv, {"n_steps": 256, "batch_size": 64}, {"activation_fn": "relu"}, seed=0, device="cpu")
    model.learn(512)
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "imports").mkdir()
    model.save(workdir / "imports/mine.zip")
    (workdir / "mine.yaml").write_text(
        "experiment: imp\nimports: {mine: {zips: [imports/mine.zip], task: Pendulum, seed: 0}}\n"
    )  # paths relative to the workflow folder
    snakemake(workdir, "results/imp/runs/imports/mine.h5", "--cores", "1", "--configfile", "mine.yaml")
    with RunFile(workdir / "results/imp/runs/imports/mine.h5") as run:
        assert run.steps.tolist() == [512] and run.algo == "ppo"
        assert run.config("policy") == {"activation_fn": "relu"}
        assert run.config("hyperparameters")["n_steps"] == 256 and run.config("hyperparameters")["clip_range"] == 0.2
        obs = np.random.default_rng(1).uniform(-1, 1, (64, 3)).astype(np.float32)
        rebuilt = build_policy(run, 512)
        np.testing.assert_array_equal(
            rebuilt.predict(obs, deterministic=True)[0], model.policy.predict(obs, deterministic=True)[0]
        )
        with th.no_grad():
            np.testing.assert_array_equal(
                rebuilt.predict_values(th.as_tensor(obs)), model.policy.predict_values(th.as_tensor(obs))
            )

    venv.save(tmp_path / "vn.pkl")
    export_main(
        [
            "model",
            str(workdir / "imports/mine.zip"),
            "--env-id",
            "Pendulum-v1",
            "--vecnormalize",
            str(tmp_path / "vn.pkl"),
            "--out",
            str(tmp_path / "vn.h5"),
        ]
    )
    with RunFile(tmp_path / "vn.h5") as run:
        stats = run.vec_normalize(512)
        np.testing.assert_array_equal(stats["obs_mean"], venv.obs_rms.mean)
        np.testing.assert_array_equal(stats["obs_var"], venv.obs_rms.var)
        assert stats["ret_var"] == float(venv.ret_rms.var) and stats["clip_obs"] == 10.0 and stats["norm_reward"]
        # the analysis rebuilds the env with these settings and the checkpoint's statistics
        assert run.config("vec_normalize") == {
            "norm_obs": True,
            "norm_reward": True,
            "clip_obs": 10.0,
            "clip_reward": 10.0,
            "gamma": 0.99,
            "epsilon": venv.epsilon,
        }
        normalizer = _analysis_env(run, 512)
        np.testing.assert_array_equal(normalizer.obs_rms.mean, venv.obs_rms.mean)
        assert not normalizer.training
