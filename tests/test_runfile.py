"""Bad run files fail with the file and the key named."""

from __future__ import annotations

import shutil

import h5py
import pytest

from pgsubspaces import h5io
from pgsubspaces.export.export import ExportError, export_run
from pgsubspaces.export.runfile import RunFile, RunFileError


@pytest.fixture
def ppo_file(smoke_workflow, tmp_path):
    path = tmp_path / "run.h5"
    shutil.copy(smoke_workflow / "results/smoke/runs/ppo/Pendulum/seed0.h5", path)
    return path


def read_everything(path):
    with RunFile(path) as run:
        for step in run.steps.tolist():
            for net in ("actor", "critic"):
                run.vector(step, net)
        run.curves()


def test_truncated_file_names_the_path(ppo_file):
    data = ppo_file.read_bytes()
    ppo_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(RunFileError, match=f"{ppo_file}: .*(corrupt|truncated)"):
        read_everything(ppo_file)


def test_not_hdf5(tmp_path):
    path = tmp_path / "run.h5"
    path.write_text("not an HDF5 file")
    with pytest.raises(RunFileError, match=f"{path}: not a readable HDF5 file"):
        RunFile(path)
    with pytest.raises(RunFileError, match="no such run file"):
        RunFile(tmp_path / "missing.h5")


def test_other_format_and_version(ppo_file, tmp_path):
    other = tmp_path / "other.h5"
    h5py.File(other, "w").close()
    with pytest.raises(RunFileError, match=f"{other}: attribute 'format' is None, expected 'pgsubspaces-run'"):
        RunFile(other)
    with h5py.File(ppo_file, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(RunFileError, match="format_version 99, this code reads 2: .* delete it and rerun"):
        RunFile(ppo_file)


def test_missing_step_and_key(ppo_file):
    with h5py.File(ppo_file, "a") as f:
        del f["checkpoints/step_000000512/critic"]
        h5io.seal(f)  # a sealed file lacking a dataset (unsealed, it is refused as damaged: test_integrity.py)
    with RunFile(ppo_file) as run:
        with pytest.raises(RunFileError, match=r"no checkpoint at step 7 \(steps: \[0, 512, 1024, 2048\]\)"):
            run.vector(7, "actor")
        with pytest.raises(RunFileError, match=f"{ppo_file}: missing '/checkpoints/step_000000512/critic'"):
            run.vector(512, "critic")
        with pytest.raises(
            RunFileError, match=r"checkpoint 512 has no .replay_end. \(not an off-policy run with a stream\)"
        ):
            run.replay(512)


def test_export_of_an_unfinished_run(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(ExportError, match="missing spec.json; has training finished"):
        export_run(tmp_path / "run", tmp_path / "run.h5")
    assert not (tmp_path / "run.h5").exists()
