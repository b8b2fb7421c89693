"""The optional dense record of the actor's parameters agrees with the checkpoints it passes through."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import REPO

from pgsubspaces.config import load_config, run_specs, validate_config
from pgsubspaces.export.export import export_run
from pgsubspaces.export.runfile import RunFile
from pgsubspaces.train.train import train


@pytest.mark.parametrize("algo, every", [("ppo", 20), ("sac", 7)])
def test_actor_path_matches_checkpoints(tmp_path, algo, every):
    spec = run_specs(validate_config(load_config(REPO / "config" / "smoke.yaml")))[algo, "Pendulum", 0]
    spec = dataclasses.replace(spec, actor_path_every=every)
    train(spec, tmp_path / "run", tmp_path / "run/training.json", device="cpu", progress=False)
    export_run(tmp_path / "run", tmp_path / "run.h5")
    with RunFile(tmp_path / "run.h5") as run:
        updates = run._read("actor_path/updates")
        params = run._read("actor_path/params")
        env_steps = run._read("actor_path/env_steps")
        assert updates[0] == 0 and np.all(updates[1:] % every == 0) and np.all(np.diff(updates) == every)
        assert np.all(np.diff(env_steps) >= 0) and params.shape == (len(updates), run.layout("actor").size)
        matched = 0
        for step in run.steps.tolist():
            count = run.checkpoint_attrs(step)["actor_updates"]
            if count % every == 0:  # a record was taken at exactly this optimizer step
                np.testing.assert_array_equal(params[updates.tolist().index(count)], run.vector(step, "actor"))
                matched += 1
        assert matched >= 2
        assert updates[-1] <= run.checkpoint_attrs(run.steps[-1])["actor_updates"]
