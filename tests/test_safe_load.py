"""Foreign SB3 files are read as data: crafted zips and pickles run nothing, ordinary ones export as before."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import pickle
import shlex
import zipfile

import h5py
import numpy as np
import pytest
import torch as th
from conftest import REPO
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.utils import LinearSchedule

from pgsubspaces.config import load_config, run_specs, validate_config
from pgsubspaces.export.export import ExportError, export_models, export_run
from pgsubspaces.export.export import main as export_main
from pgsubspaces.export.sb3_files import parse_array
from pgsubspaces.train.envs import make_vec_env
from pgsubspaces.train.train import train

FINGER = "dm_control/finger-spin-v0"


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def export(*args) -> str:
    """Run the CLI; '' on success, else its error message (it must exit cleanly, not with a traceback)."""
    args = [*map(str, args)]
    if "--env-id" not in args and "--task" not in args:
        args += ["--env-id", "Pendulum-v1"]  # the CLI needs an env for the analysis; tests of the zip use Pendulum
    try:
        export_main(["model", *args])
    except SystemExit as error:
        assert isinstance(error.code, str) and error.code.startswith("export: "), error.code
        return error.code
    return ""


def rewrite_zip(source, dest, *, data=None, members=None):
    """A copy of an SB3 zip with its ``data`` JSON changed by ``data(dict)`` and members replaced."""
    with zipfile.ZipFile(source) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    if data is not None:
        parsed = json.loads(files["data"])
        data(parsed)
        files["data"] = json.dumps(parsed).encode()
    files.update(members or {})
    with zipfile.ZipFile(dest, "w") as archive:
        for name, raw in files.items():
            archive.writestr(name, raw)
    return dest


@pytest.fixture(scope="module")
def ppo_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("ppo") / "ppo.zip"
    PPO("MlpPolicy", "Pendulum-v1", device="cpu", n_steps=64, batch_size=32, seed=0).save(path)
    return path


def flat_policy(path) -> np.ndarray:
    with zipfile.ZipFile(path) as archive:
        state = th.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)
    return np.concatenate([t.reshape(-1).numpy() for t in state.values()])


def test_crafted_zip_exports_without_running_its_pickles(ppo_zip, tmp_path):
    marker = tmp_path / "pwned"
    payload = base64.b64encode(pickle.dumps(Payload(marker))).decode()

    def poison(data):  # every pickled entry carries the payload; the readable fields stay
        for value in data.values():
            if isinstance(value, dict) and ":serialized:" in value:
                value[":serialized:"] = payload

    evil = rewrite_zip(ppo_zip, tmp_path / "evil.zip", data=poison)
    assert export(evil, "--out", tmp_path / "run.h5") == ""
    assert not marker.exists()
    with h5py.File(tmp_path / "run.h5") as f:
        step = f["checkpoints/step_000000000"]
        stored = np.concatenate([step["actor"][()], step["critic"][()]])
        hyper = json.loads(f["config"].attrs["hyperparameters"])
        np.testing.assert_array_equal(f["spaces/observation/high"][()], [1, 1, 8])
    assert sorted(stored) == sorted(flat_policy(ppo_zip))  # the same numbers, split into actor and critic
    assert hyper["clip_range"] == 0.2 and hyper["learning_rate"] == 0.0003 and hyper["n_steps"] == 64
    # the control: SB3's own loader (--trust) does run the payload
    export(evil, "--out", tmp_path / "trusted.h5", "--trust")
    assert marker.exists()


def test_crafted_policy_tensors_are_refused(ppo_zip, tmp_path):
    marker = tmp_path / "pwned"
    raw = io.BytesIO()
    th.save({"mlp_extractor.policy_net.0.weight": Payload(marker)}, raw)
    evil = rewrite_zip(ppo_zip, tmp_path / "evil.zip", members={"policy.pth": raw.getvalue()})
    message = export(evil, "--out", tmp_path / "run.h5")
    assert "evil.zip" in message and "'policy.pth' is not a plain tensor file" in message
    assert not marker.exists() and not (tmp_path / "run.h5").exists()


def crafted_pickle(obj, dest, marker):
    """``obj`` pickled with a payload hidden in one of its attributes."""
    obj.hidden = Payload(marker)
    with open(dest, "wb") as stream:
        pickle.dump(obj, stream)
    del obj.hidden
    return dest


def test_crafted_vecnormalize_is_refused(ppo_zip, tmp_path):
    venv = make_vec_env("Pendulum-v1", vec_normalize={"norm_obs": True, "norm_reward": True, "gamma": 0.99})
    venv.reset()
    venv.save(tmp_path / "vn.pkl")
    marker = tmp_path / "pwned"
    evil = crafted_pickle(venv, tmp_path / "evil.pkl", marker)
    message = export(ppo_zip, "--vecnormalize", evil, "--out", tmp_path / "run.h5")
    assert "evil.pkl" in message and "posix.system" in message and "refused" in message
    assert not marker.exists() and not (tmp_path / "run.h5").exists()
    assert export(ppo_zip, "--vecnormalize", tmp_path / "vn.pkl", "--out", tmp_path / "run.h5") == ""
    export(ppo_zip, "--vecnormalize", evil, "--out", tmp_path / "trusted.h5", "--trust")
    assert marker.exists()  # the control: plain pickle runs it


def test_crafted_replay_buffer_and_wrong_pickles_are_refused(tmp_path):
    model = SAC(
        "MlpPolicy",
        "Pendulum-v1",
        device="cpu",
        buffer_size=100,
        learning_starts=10,
        batch_size=8,
        seed=0,
        policy_kwargs={"net_arch": [8]},
    )
    model.learn(20)
    model.save(tmp_path / "sac.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    marker = tmp_path / "pwned"
    evil = crafted_pickle(model.replay_buffer, tmp_path / "evil.pkl", marker)
    message = export(tmp_path / "sac.zip", "--replay-buffer", evil, "--out", tmp_path / "run.h5")
    assert "evil.pkl" in message and "posix.system" in message
    assert not marker.exists()
    with open(tmp_path / "array.pkl", "wb") as stream:
        pickle.dump(np.zeros(3), stream)
    message = export(tmp_path / "sac.zip", "--replay-buffer", tmp_path / "array.pkl", "--out", tmp_path / "run.h5")
    assert "array.pkl: holds ndarray, not a replay buffer" in message
    message = export(tmp_path / "sac.zip", "--vecnormalize", tmp_path / "buffer.pkl", "--out", tmp_path / "run.h5")
    assert "buffer.pkl: holds stable_baselines3.common.buffers.ReplayBuffer, not a VecNormalize" in message
    (tmp_path / "garbage.pkl").write_bytes(b"\x80\x05not a pickle")
    message = export(tmp_path / "sac.zip", "--vecnormalize", tmp_path / "garbage.pkl", "--out", tmp_path / "run.h5")
    assert "garbage.pkl: not a readable VecNormalize pickle" in message


def test_td3_zips_export_as_data_and_nan_and_discrete_zips_get_named_errors(ppo_zip, tmp_path):
    marker = tmp_path / "pwned"
    payload = base64.b64encode(pickle.dumps(Payload(marker))).decode()
    td3 = TD3("MlpPolicy", "Pendulum-v1", device="cpu", policy_kwargs={"net_arch": [8, 8]}, seed=0)
    td3.save(tmp_path / "td3.zip")

    def poison(data):  # the pickled entries (action_noise, lr_schedule, spaces, ...) carry the payload
        for value in data.values():
            if isinstance(value, dict) and ":serialized:" in value:
                value[":serialized:"] = payload

    evil = rewrite_zip(tmp_path / "td3.zip", tmp_path / "evil.zip", data=poison)
    # train_freq is a pickle without readable fields
    assert export(evil, "--out", tmp_path / "td3.h5", "--hyperparameter", "train_freq=1") == ""
    assert not marker.exists()
    with h5py.File(tmp_path / "td3.h5") as f:
        step = f["checkpoints/step_000000000"]
        assert sorted(step) == ["actor", "actor_target", "critic", "critic_target"]
        stored = np.concatenate([step[net][()] for net in sorted(step)])
        hyper = json.loads(f["config"].attrs["hyperparameters"])
    assert sorted(stored) == sorted(flat_policy(tmp_path / "td3.zip"))
    assert hyper["policy_delay"] == 2 and hyper["target_policy_noise"] == 0.2 and hyper["target_noise_clip"] == 0.5
    assert export(tmp_path / "td3.zip", "--out", tmp_path / "td3_safe.h5", "--hyperparameter", "train_freq=1") == ""
    assert export(tmp_path / "td3.zip", "--out", tmp_path / "td3_trust.h5", "--trust") == ""
    assert_same_run_files(tmp_path / "td3_safe.h5", tmp_path / "td3_trust.h5")

    with zipfile.ZipFile(ppo_zip) as archive:
        state = th.load(io.BytesIO(archive.read("policy.pth")), weights_only=True)
    state["action_net.weight"][0, 3] = float("nan")
    raw = io.BytesIO()
    th.save(state, raw)
    nan_zip = rewrite_zip(ppo_zip, tmp_path / "nan.zip", members={"policy.pth": raw.getvalue()})
    for trust in ((), ("--trust",)):
        message = export(nan_zip, "--out", tmp_path / "run.h5", *trust)
        assert "nan.zip" in message and "'action_net.weight'" in message and "NaN or infinite" in message

    PPO("MlpPolicy", "CartPole-v1", device="cpu").save(tmp_path / "discrete.zip")
    message = export(tmp_path / "discrete.zip", "--out", tmp_path / "run.h5")
    assert "discrete.zip: 'action_space' is <class 'gymnasium.spaces.discrete.Discrete'>" in message
    assert "Box" in message
    assert "'action_space' is Discrete" in export(tmp_path / "discrete.zip", "--out", tmp_path / "run.h5", "--trust")
    assert not (tmp_path / "run.h5").exists()


def test_unreadable_fields_are_named(ppo_zip, tmp_path):
    def summarised(data):
        data["observation_space"]["low"] = "[-1. -1. ... -8.]"

    bad = rewrite_zip(ppo_zip, tmp_path / "summarised.zip", data=summarised)
    with pytest.raises(ExportError, match="summarised with '...'.*--spaces-from-env"):  # no env to fall back on
        export_models([bad], tmp_path / "run.h5")
    assert export(bad, "--out", tmp_path / "run.h5") == ""  # the CLI always names an env: its spaces are taken
    with h5py.File(tmp_path / "run.h5") as f:
        assert f["spaces/observation/low"][()].tolist() == [-1.0, -1.0, -8.0]
    assert export(bad, "--out", tmp_path / "run.h5", "--spaces-from-env", "--env-id", "Pendulum-v1") == ""
    message = export(bad, "--out", tmp_path / "run.h5", "--spaces-from-env", "--env-id", "MountainCarContinuous-v0")
    assert "summarised.zip: 'observation_space' has _shape [3], the env's [2]" in message
    message = export(ppo_zip, "--out", tmp_path / "run.h5", "--env-id", "MountainCarContinuous-v0")
    assert "its observation space has shape (3,), env 'MountainCarContinuous-v0' has (2,)" in message
    with pytest.raises(SystemExit) as error:  # neither --env-id nor --task: argparse refuses
        export_main(["model", str(bad), "--out", str(tmp_path / "run.h5"), "--spaces-from-env"])
    assert error.value.code == 2

    def float64(data):  # "-1." does not pin down a float64: it may be a rounding of -1.000000001
        data["observation_space"]["dtype"] = "float64"

    message = export(rewrite_zip(ppo_zip, tmp_path / "f64.zip", data=float64), "--out", tmp_path / "run.h5")
    assert "'observation_space' has dtype float64, the env's float32" in message

    def opaque_clip_range(data):
        data["clip_range"]["value_schedule"] = "<function clip at 0x7f>"

    opaque = rewrite_zip(ppo_zip, tmp_path / "opaque.zip", data=opaque_clip_range)
    message = export(opaque, "--out", tmp_path / "run.h5")
    assert "['clip_range'] are stored only as pickles" in message and "--hyperparameter clip_range=VALUE" in message
    assert export(opaque, "--out", tmp_path / "run.h5", "--hyperparameter", "clip_range=0.15") == ""
    with h5py.File(tmp_path / "run.h5") as f:
        assert json.loads(f["config"].attrs["hyperparameters"])["clip_range"] == 0.15

    def wider(data):
        data["policy_kwargs"] = {"net_arch": [32]}

    message = export(rewrite_zip(ppo_zip, tmp_path / "wider.zip", data=wider), "--out", tmp_path / "run.h5")
    assert "policy.pth does not match a PPO policy" in message and "mlp_extractor.policy_net.2.weight" in message

    def sigmoid(data):
        data["policy_kwargs"] = {":type:": "<class 'dict'>", ":serialized:": "", "activation_fn": "<class 'x.Sig'>"}

    message = export(rewrite_zip(ppo_zip, tmp_path / "act.zip", data=sigmoid), "--out", tmp_path / "run.h5")
    assert "policy_kwargs 'activation_fn' x.Sig is not supported" in message

    (tmp_path / "not.zip").write_bytes(b"PK no zip")
    assert "not.zip: not a readable zip file" in export(tmp_path / "not.zip", "--out", tmp_path / "run.h5")
    with zipfile.ZipFile(tmp_path / "nodata.zip", "w") as archive:
        archive.writestr("policy.pth", b"")
    assert "no 'data' member" in export(tmp_path / "nodata.zip", "--out", tmp_path / "run.h5")


def assert_same_run_files(a, b):
    """Every dataset and attribute equal, but the creation time."""
    with h5py.File(a) as fa, h5py.File(b) as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        assert names_a == names_b
        for name in ["/", *names_a]:
            attrs_a, attrs_b = dict(fa[name].attrs), dict(fb[name].attrs)
            # the export time differs, and with it the seal over all attributes (every other one compared here)
            for key in ("created", "attributes_sha256"):
                attrs_a.pop(key, None), attrs_b.pop(key, None)
            assert attrs_a.keys() == attrs_b.keys(), name
            for key in attrs_a:
                np.testing.assert_array_equal(attrs_a[key], attrs_b[key], err_msg=f"{name} {key}")
            if isinstance(fa[name], h5py.Dataset):
                assert fa[name].dtype == fb[name].dtype, name
                np.testing.assert_array_equal(fa[name][()], fb[name][()], err_msg=name)
        assert len(names_a) > 10


def test_safe_and_trusted_loading_give_identical_run_files(tmp_path):
    th.set_num_threads(1)
    venv = make_vec_env("Pendulum-v1", vec_normalize={"norm_obs": True, "norm_reward": True, "gamma": 0.99})
    ppo = PPO(
        "MlpPolicy",
        venv,
        n_steps=128,
        batch_size=64,
        n_epochs=2,
        use_sde=True,
        clip_range=LinearSchedule(0.3, 0.1, 0.5),
        learning_rate=LinearSchedule(1e-3, 1e-4, 1.0),
        policy_kwargs={"activation_fn": th.nn.ReLU, "net_arch": {"pi": [16], "vf": [8]}, "log_std_init": -1.0},
        device="cpu",
        seed=1,
    )
    ppo.learn(256)
    ppo.save(tmp_path / "ppo.zip")
    venv.save(tmp_path / "ppo_vn.pkl")
    args = [tmp_path / "ppo.zip", "--vecnormalize", tmp_path / "ppo_vn.pkl"]
    assert export(*args, "--out", tmp_path / "ppo_safe.h5") == ""
    assert export(*args, "--out", tmp_path / "ppo_trust.h5", "--trust") == ""
    assert_same_run_files(tmp_path / "ppo_safe.h5", tmp_path / "ppo_trust.h5")
    with h5py.File(tmp_path / "ppo_safe.h5") as f:
        hyper = json.loads(f["config"].attrs["hyperparameters"])
        assert hyper["clip_range"] == 0.3 and hyper["learning_rate"] == 1e-3 and hyper["use_sde"] is True
        assert json.loads(f["config"].attrs["policy"])["activation_fn"] == "relu"

    venv = make_vec_env("Pendulum-v1", vec_normalize={"norm_obs": True, "norm_reward": False, "gamma": 0.99})
    sac = SAC(
        "MlpPolicy",
        venv,
        buffer_size=150,
        learning_starts=20,
        batch_size=16,
        policy_kwargs={"net_arch": [16, 16], "n_critics": 3, "activation_fn": th.nn.ELU},
        device="cpu",
        seed=2,
    )
    paths = []
    for step in (100, 200):
        sac.learn(100, reset_num_timesteps=False)
        sac.save(tmp_path / f"sac_{step}.zip")
        venv.save(tmp_path / f"sac_vn_{step}.pkl")
        paths.append(step)
    sac.save_replay_buffer(tmp_path / "buffer.pkl")
    args = [
        tmp_path / "sac_200.zip",
        tmp_path / "sac_100.zip",
        "--vecnormalize",
        tmp_path / "sac_vn_200.pkl",
        tmp_path / "sac_vn_100.pkl",
        "--replay-buffer",
        tmp_path / "buffer.pkl",
    ]
    # train_freq is a NamedTuple pickle without readable fields: the safe reader needs it given
    assert export(*args, "--out", tmp_path / "sac_safe.h5", "--hyperparameter", "train_freq=1") == ""
    assert export(*args, "--out", tmp_path / "sac_trust.h5", "--trust") == ""
    assert_same_run_files(tmp_path / "sac_safe.h5", tmp_path / "sac_trust.h5")
    assert export(*args, "--out", tmp_path / "sac_omitted.h5") == ""
    with h5py.File(tmp_path / "sac_omitted.h5") as f:
        hyper = json.loads(f["config"].attrs["hyperparameters"])
        assert "train_freq" not in hyper and hyper["buffer_size"] == 150 and hyper["ent_coef"] == "auto"
        assert f["replay/rewards"].shape == (150,) and f["checkpoints/steps"][()].tolist() == [100, 200]


@pytest.mark.parametrize(
    "algo, env_id", [("ppo", "Pendulum-v1"), ("sac", "Pendulum-v1"), ("td3", "Pendulum-v1"), ("ppo", FINGER)]
)
def test_export_run_is_unchanged_by_the_safe_reader(tmp_path, algo, env_id):
    th.set_num_threads(1)
    configs = [REPO / "config" / "smoke.yaml"] + ([REPO / "tests" / "configs" / "td3.yaml"] if algo == "td3" else [])
    spec = run_specs(validate_config(load_config(*configs)))[algo, "Pendulum", 0]
    budget = {"ppo": 1024, "sac": 300, "td3": 300}[algo]
    spec = dataclasses.replace(spec, total_steps=budget, checkpoint_steps=(0, budget // 2, budget), env_id=env_id)
    if env_id == FINGER:  # float64 action bounds: printed "[-1. -1.]" does not pin them down, the env does
        spec = dataclasses.replace(spec, hyperparameters={**spec.hyperparameters, "n_steps": 256, "batch_size": 64})
        spec = dataclasses.replace(spec, total_steps=512, checkpoint_steps=(0, 512))
    train(spec, tmp_path / "run", tmp_path / "run/training.json", device="cpu", progress=False)
    export_run(tmp_path / "run", tmp_path / "safe.h5")
    export_run(tmp_path / "run", tmp_path / "trusted.h5", trust=True)
    assert_same_run_files(tmp_path / "safe.h5", tmp_path / "trusted.h5")
    if env_id == FINGER:
        with h5py.File(tmp_path / "safe.h5") as f:
            assert f["spaces/action/low"].dtype == np.float64
        zipped = tmp_path / "run/checkpoints/step_000000512/model.zip"
        with pytest.raises(ExportError, match="'action_space'.*may be rounded.*--spaces-from-env"):
            export_models([zipped], tmp_path / "zip.h5")  # no env: the printed float64 bounds are refused
        assert export(zipped, "--out", tmp_path / "zip.h5", "--env-id", FINGER) == ""  # the env's bounds
        with h5py.File(tmp_path / "zip.h5") as f:
            assert f["spaces/action/low"].dtype == np.float64


def test_printed_arrays_parse_exactly_or_are_refused():
    rng = np.random.default_rng(0)
    parsed = refused = 0
    for i in range(2000):
        dtype = (np.float32, np.float64, np.int64)[i % 3]
        values = rng.standard_normal(5) * 10.0 ** rng.integers(-6, 6)
        if i % 2:
            values = np.round(values, 1)
        array = values.astype(dtype)
        array[0] = np.inf if dtype != np.int64 else array[0]
        try:
            back = parse_array(str(array), np.dtype(dtype), array.shape)
        except ValueError:
            refused += 1
            continue
        parsed += 1
        np.testing.assert_array_equal(back, array)
    assert parsed > 1000 and refused > 300
    with pytest.raises(ValueError, match="summarised"):
        parse_array(str(np.zeros(2000, np.float32)), np.dtype(np.float32), (2000,))
    with pytest.raises(ValueError, match="3 values printed for shape"):
        parse_array("[1. 2. 3.]", np.dtype(np.float32), (2,))
    with pytest.raises(ValueError, match="not a number"):
        parse_array("[1. __import__]", np.dtype(np.float32), (2,))
