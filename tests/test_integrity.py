"""Damaged files are detected and named, never read as other numbers (docs/hdf5.md, "Integrity").

Real files: tiny PPO and SAC runs (conftest.tiny_runs), their data files, and eigen and spectrum files made
from them by the real stages. Bytes are flipped inside the stored chunks of every dataset, inside the
metadata, in the global heap of string attributes; files are truncated; parameters are made NaN.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REPO, copy_workflow, job_env, snakemake

from pgsubspaces import h5io
from pgsubspaces.analysis.checkpoint_losses import read_batches
from pgsubspaces.analysis.data import main as data_main
from pgsubspaces.analysis.eigen import analyse
from pgsubspaces.analysis.spectrum import full_spectrum
from pgsubspaces.config import AnalysisSpec, load_config, run_specs, validate_config
from pgsubspaces.export.runfile import IntegrityError, RunFile, RunFileError
from pgsubspaces.tables.tables import EigenFile, read_spectrum
from pgsubspaces.verify import main as verify_main

KINDS = ("ppo_run", "sac_run", "ppo_data", "sac_data", "eigen", "spectrum")


@pytest.fixture(scope="module")
def files(tiny_runs, tmp_path_factory) -> dict[str, Path]:
    """One clean file of each kind."""
    import torch as th

    th.set_num_threads(1)
    root = tmp_path_factory.mktemp("integrity")
    (ppo, ppo_data, _), (sac, sac_data, _) = tiny_runs["ppo"], tiny_runs["sac"]
    spec = AnalysisSpec.from_settings({"k": 3, "k_levels": [1, 3], "guard_eigenpairs": 2, "device": "cpu"})
    analyse(ppo, ppo_data, root / "eigen.h5", spec)
    full_spectrum(ppo, ppo_data, root / "spectrum.h5", AnalysisSpec.from_settings({"spectrum_samples": 200}))
    return {
        "ppo_run": ppo,
        "sac_run": sac,
        "ppo_data": ppo_data,
        "sac_data": sac_data,
        "eigen": root / "eigen.h5",
        "spectrum": root / "spectrum.h5",
    }


def read_with_library(kind: str, path: Path, files: dict[str, Path]):
    """Everything the workflow's readers take from a file of ``kind`` (canonicalised for comparison)."""
    if kind.endswith("_run"):
        with RunFile(path) as run:
            out = {"attrs": run.attrs, "steps": run.steps, "curves": run.curves()}
            for key in ("hyperparameters", "policy", "spec", "training"):
                out[key] = run.config(key)
            out["spaces"] = [(s.low, s.high) for s in (run.space("observation"), run.space("action"))]
            for step in run.steps.tolist():
                out[step] = {net: run.vector(step, net) for net in ("actor", "critic")}
                out[step, "attrs"] = run.checkpoint_attrs(step)
                out[step, "vec"] = run.vec_normalize(step)
                if run.algo == "sac":
                    out[step, "replay"] = run.replay(step)
                    out[step, "target"] = run.vector(step, "critic_target")
            out["layout"] = [run.layout(net) for net in ("actor", "critic")]
        return out
    if kind.endswith("_data"):
        with RunFile(files[kind.replace("_data", "_run")]) as run:
            return read_batches(run, path).__dict__
    if kind == "eigen":
        return EigenFile(path).__dict__
    return read_spectrum(path)


def same(a, b) -> bool:
    """Equal, arrays compared bitwise (NaN equal to NaN)."""
    return _canonical(a) == _canonical(b)


def _canonical(value):
    if isinstance(value, dict):
        return sorted((repr(k), _canonical(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, np.generic):
        return (value.dtype.str, value.tobytes())
    return repr(value)


def chunk_spans(path: Path) -> dict[str, list[tuple[int, int]]]:
    """Dataset name -> (file offset, size) of each stored chunk."""
    spans = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.size:
                spans[name] = [
                    (info.byte_offset, info.size)
                    for info in (obj.id.get_chunk_info(i) for i in range(obj.id.get_num_chunks()))
                ]

        f.visititems(visit)
    return spans


def flipped(source: Path, target: Path, offset: int) -> Path:
    data = bytearray(source.read_bytes())
    data[offset] ^= 0xFF
    target.write_bytes(bytes(data))
    return target


@pytest.mark.parametrize("kind", KINDS)
def test_a_flipped_byte_in_any_dataset_is_named_on_read(files, kind, tmp_path):
    clean = read_with_library(kind, files[kind], files)
    spans = chunk_spans(files[kind])
    minimum = {"ppo_run": 24, "sac_run": 34, "ppo_data": 13, "sac_data": 6, "eigen": 36, "spectrum": 2}
    assert len(spans) >= minimum[kind]
    wrong, unnamed, read_by_library = [], [], 0
    for name, chunks in spans.items():
        offset, size = chunks[len(chunks) // 2]
        path = flipped(files[kind], tmp_path / f"{kind}.h5", offset + size // 2)
        with pytest.raises(IntegrityError, match=f"{path}: '/{name}' is damaged"):
            h5io.verify_file(path)
        try:
            result = read_with_library(kind, path, files)
        except IntegrityError as error:
            read_by_library += 1
            if str(path) not in str(error) or name not in str(error) or "delete it and rerun" not in str(error):
                unnamed.append((name, str(error)))
            continue
        if not same(result, clean):
            wrong.append(name)
    assert wrong == [], f"read as other numbers: {wrong}"
    assert unnamed == []
    # the readers raise on every dataset they use; the eigen file's residuals, gaps, ... only verify reads
    assert read_by_library == (16 if kind == "eigen" else len(spans)), read_by_library


def metadata_offsets(path: Path, count: int) -> list[int]:
    """``count`` evenly spread offsets outside every chunk: object headers, indexes, heaps, the superblock."""
    inside = np.zeros(path.stat().st_size, dtype=bool)
    for chunks in chunk_spans(path).values():
        for offset, size in chunks:
            inside[offset : offset + size] = True
    outside = np.flatnonzero(~inside)
    return outside[np.linspace(0, len(outside) - 1, count).astype(int)].tolist()


def isolated(function, *args, timeout: int = 20):
    """``function(*args)`` in a forked child (HDF5 may crash or loop on damaged metadata of other files):
    ("ok", result) / ("error", exception type, message) / ("crash", how)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        signal.alarm(timeout)
        try:
            outcome = ("ok", pickle.dumps(_canonical(function(*args))))
        except Exception as error:  # noqa: BLE001 - reported to the parent
            outcome = ("error", type(error).__name__, str(error))
        with os.fdopen(write_end, "wb") as stream:
            pickle.dump(outcome, stream)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as stream:
        data = stream.read()
    _, status = os.waitpid(pid, 0)
    return pickle.loads(data) if data else ("crash", f"status {status}")


@pytest.mark.parametrize("kind", ["ppo_run", "sac_data", "eigen"])
def test_a_flipped_byte_in_the_metadata_is_named_or_harmless(files, kind, tmp_path):
    """60 bytes outside the datasets' chunks: each flip either raises the named error or changes nothing the
    readers return (free space, padding); never other numbers, never a raw h5py error."""
    clean = _canonical(read_with_library(kind, files[kind], files))
    outcomes = {"named": 0, "unchanged": 0}
    for offset in metadata_offsets(files[kind], 60):
        path = flipped(files[kind], tmp_path / f"{kind}.h5", offset)
        outcome = isolated(read_with_library, kind, path, files)
        if outcome[0] == "ok":
            assert pickle.loads(outcome[1]) == clean, f"flip at {offset}: read as other values"
            outcomes["unchanged"] += 1
        else:
            assert outcome[0] == "error" and outcome[1] in ("IntegrityError", "RunFileError"), (offset, outcome)
            assert str(path) in outcome[2], outcome
            outcomes["named"] += 1
    assert outcomes["named"] >= 15, outcomes


def test_a_damaged_string_attribute_is_caught_by_the_seal(files, tmp_path):
    """HDF5 keeps string attributes in its global heap, which has no checksum: the JSON hyperparameters
    would read as other values but for the seal."""
    data = bytearray(files["ppo_run"].read_bytes())
    at = data.index(b'"gamma": ') + len(b'"gamma": ')  # the first digit of gamma in /config.hyperparameters
    assert chr(data[at]).isdigit()
    data[at] = ord("1") if data[at] != ord("1") else ord("2")
    path = tmp_path / "run.h5"
    path.write_bytes(bytes(data))
    with h5py.File(path) as f:  # plain h5py reads the changed value without complaint
        assert f["config"].attrs["hyperparameters"] != h5py.File(files["ppo_run"])["config"].attrs["hyperparameters"]
    with pytest.raises(IntegrityError, match=f"{path}: an attribute is damaged .*attributes_sha256 does not match"):
        RunFile(path)


@pytest.mark.parametrize("kind", KINDS)
def test_a_truncated_file_is_named(files, kind, tmp_path):
    for fraction in (0.5, 0.97):
        path = tmp_path / f"{kind}.h5"
        data = files[kind].read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(IntegrityError, match=f"{path}: .*damaged.*delete it and rerun"):
            read_with_library(kind, path, files)
        with pytest.raises(IntegrityError):
            h5io.verify_file(path)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_parameters_are_named_before_torch_sees_them(files, tmp_path, value, capsys):
    path = tmp_path / "run.h5"
    shutil.copy(files["ppo_run"], path)
    with h5py.File(path, "a") as f:  # a valid file (checksums rewritten) holding a diverged checkpoint
        f["checkpoints/step_000001024/actor"][5] = value
    h5io.verify_file(path)
    message = f"{path}: checkpoint step 1024, network actor: 1 of [0-9]+ parameters are NaN or inf"
    with RunFile(path) as run, pytest.raises(IntegrityError, match=message):
        run.vector(1024, "actor")
    with pytest.raises(SystemExit, match="1"):  # the data job's command line: the message, no traceback
        data_main(["--run", str(path), "--step", "1024", "--out", str(tmp_path / "data.h5")])
    assert re.fullmatch(f"error: {message}.*\n", capsys.readouterr().err, re.S)
    assert not (tmp_path / "data.h5").exists()


def test_old_and_unsealed_files_are_refused_with_a_reason(files, tmp_path):
    old = tmp_path / "old.h5"
    shutil.copy(files["eigen"], old)
    with h5py.File(old, "a") as f:
        f.attrs["format_version"] = 2
    with pytest.raises(RunFileError, match=f"{old}: format_version 2, this code reads 3: .*delete it and rerun"):
        EigenFile(old)
    unsealed = tmp_path / "unsealed.h5"
    shutil.copy(files["spectrum"], unsealed)
    with h5py.File(unsealed, "a") as f:
        del f.attrs[h5io.DIGEST]
    with pytest.raises(IntegrityError, match=f"{unsealed}: the seal 'attributes_sha256' is damaged"):
        read_spectrum(unsealed)
    with h5py.File(files["eigen"]) as f:  # what the writers write
        assert f.attrs[h5io.DIGEST] == np.bytes_(h5io.attributes_digest(f))
        assert all(d.fletcher32 and d.chunks for d in _datasets(f))
    assert files["eigen"].read_bytes()[8] == 3  # superblock version 3 (checksummed): the 1.10 format


def _datasets(f):
    found = []
    f.visititems(lambda _, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return found


def test_create_dataset_refuses_scalars_and_stores_strings_fixed_length(tmp_path):
    with h5io.write_h5(tmp_path / "x.h5") as f:
        with pytest.raises(ValueError, match="scalar dataset cannot carry a checksum"):
            h5io.create_dataset(f, "scalar", 3.0)
        h5io.create_dataset(f, "names", np.array(["a.weight", "é"], dtype=object))
        h5io.create_dataset(f, "empty", np.zeros((0, 3)))
    with h5py.File(tmp_path / "x.h5") as f:
        assert [n.decode() for n in f["names"][()]] == ["a.weight", "é"] and f["names"].dtype.kind == "S"
        assert f["empty"].shape == (0, 3) and f["empty"].fletcher32


def experiment(files, root: Path) -> Path:
    """results/smoke laid out as the workflow does, with one real file of each kind and a checkpoint zip."""
    results = root / "results" / "smoke"
    layout = {
        "ppo_run": "runs/ppo/Pendulum/seed0.h5",
        "sac_run": "runs/sac/Pendulum/seed0.h5",
        "ppo_data": "data/corrected/ppo/Pendulum/seed0/step000001024.h5",
        "sac_data": "data/corrected/sac/Pendulum/seed0/step000000300.h5",
        "eigen": "eigen/corrected/ppo/Pendulum/seed0/step000001024.h5",
        "spectrum": "spectra/corrected/ppo/Pendulum/seed0/step000001024.h5",
    }
    run_dir = files["ppo_run"].with_suffix("")  # the tiny run's training folder
    shutil.copytree(run_dir, results / "runs/ppo/Pendulum/seed0")
    for kind, relative in layout.items():
        (results / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(files[kind], results / relative)
    return results


def run_verify(*args: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "pgsubspaces.verify", *args], capture_output=True, text=True, env=job_env()
    )
    assert result.stderr == ""
    return result.returncode, result.stdout


def test_verify_names_each_damaged_file_and_removes_only_those(files, tmp_path):
    results = experiment(files, tmp_path)
    code, out = run_verify(str(results))
    assert code == 0 and "no damage found" in out and "(6 HDF5 files checked)" in out, out
    damaged = []
    for path in sorted(results.rglob("*.h5")):
        offset, size = next(iter(chunk_spans(path).values()))[0]
        data = bytearray(path.read_bytes())
        data[offset + size // 2] ^= 0x01
        path.write_bytes(bytes(data))
        damaged.append(path)
    truncated = results / "eigen/corrected/ppo/Pendulum/seed0/step000000000.h5"
    truncated.write_bytes(files["eigen"].read_bytes()[:3000])
    damaged.append(truncated)
    zip_path = results / "runs/ppo/Pendulum/seed0/checkpoints/step_000001024/model.zip"
    with zipfile.ZipFile(zip_path) as archive:
        member = archive.infolist()[-1]
    data = bytearray(zip_path.read_bytes())
    data[member.header_offset + 30 + len(member.filename) + member.compress_size // 2] ^= 0xFF
    zip_path.write_bytes(bytes(data))
    (results / "notes.h5").write_text("not HDF5")
    damaged.append(results / "notes.h5")
    code, out = run_verify(str(results))
    lines = [line for line in out.splitlines() if line.startswith("DAMAGED")]
    assert code == 1 and len(lines) == len(damaged) + 1, out
    for path in damaged:
        assert any(line.startswith(f"DAMAGED {path}: ") for line in lines), (path, out)
    assert any(str(zip_path) in line and ("CRC" in line or "decompress" in line) for line in lines), out
    code, out = verify_main([str(results), "--remove"]), None
    assert code == 1
    assert not any(path.exists() for path in damaged)
    run_dir = results / "runs/ppo/Pendulum/seed0"
    assert not (run_dir / "checkpoints/step_000001024").exists() and not (run_dir / "training.json").exists()
    assert (run_dir / "checkpoints/step_000000000/model.zip").exists()  # the intact earlier checkpoint stays
    assert verify_main([str(results)]) == 0


def test_after_remove_snakemake_plans_the_job_that_rebuilds_the_file(files, tmp_path):
    """A damaged run file removed by verify --remove: the dry run lists its export job (and nothing
    before it: the training is intact)."""
    workdir = copy_workflow(tmp_path / "wf")
    results = workdir / "results" / "smoke"
    target = results / "runs/ppo/Pendulum/seed0.h5"
    shutil.copytree(files["ppo_run"].with_suffix(""), results / "runs/ppo/Pendulum/seed0")
    shutil.copy(files["ppo_run"], target)
    # the tiny run is the smoke run with a smaller network and budget: record the smoke spec, so that the
    # DAG-time check of run folders against the config lets it through
    smoke = run_specs(validate_config(load_config(REPO / "config" / "smoke.yaml")))["ppo", "Pendulum", 0]
    (results / "runs/ppo/Pendulum/seed0/spec.json").write_text(smoke.to_json())
    os.utime(results / "runs/ppo/Pendulum/seed0/training.json", (1e9, 1e9))  # older than the run file
    args = ("-n", "--configfile", "config/smoke.yaml", "--cores", "1", str(target.relative_to(workdir)))
    assert "Nothing to be done" in snakemake(workdir, *args).stdout
    offset, size = chunk_spans(target)["checkpoints/step_000001024/actor"][0]
    flipped(files["ppo_run"], target, offset + size // 2)
    assert verify_main([str(results), "--remove"]) == 1 and not target.exists()
    plan = snakemake(workdir, *args).stdout
    assert re.search(r"^export\s+1$", plan, re.M) and re.search(r"^total\s+1$", plan, re.M), plan


@pytest.mark.parametrize(
    ("stage", "damaged_kind", "dataset"),
    [
        ("analysis.data", "ppo_run", "checkpoints/step_000001024/actor"),  # the tester's case: exit 0, other actions
        ("analysis.eigen", "ppo_data", "precise/advantages"),
    ],
)
def test_a_stage_on_a_damaged_input_exits_1_with_the_file_and_dataset_named(
    files, tmp_path, stage, damaged_kind, dataset
):
    offset, size = chunk_spans(files[damaged_kind])[dataset][0]
    damaged = flipped(files[damaged_kind], tmp_path / "damaged.h5", offset + size // 2)
    out = tmp_path / "out.h5"
    inputs = {"ppo_run": files["ppo_run"], "ppo_data": files["ppo_data"], damaged_kind: damaged}
    args = ["--run", str(inputs["ppo_run"]), "--out", str(out)]
    args += (
        ["--step", "1024"]
        if stage == "analysis.data"
        else ["--data", str(inputs["ppo_data"]), "--analysis", '{"k": 2}']
    )
    result = subprocess.run(
        [sys.executable, "-m", f"pgsubspaces.{stage}", *args], capture_output=True, text=True, env=job_env()
    )
    assert result.returncode == 1, result.stderr
    assert f"error: {damaged}: '/{dataset}' is damaged (" in result.stderr and "Traceback" not in result.stderr
    assert "pgsubspaces.verify" in result.stderr and not out.exists()


def test_verify_survives_a_damaged_global_heap_that_hangs_hdf5(files, tmp_path):
    """The size field of a string attribute's global-heap object (no checksum): HDF5 may loop on it; verify
    checks each file in a child with a time limit and reports the file either way."""
    from pgsubspaces.verify import damaged_h5

    data = bytearray(files["ppo_run"].read_bytes())
    starts = [m.start() for m in re.finditer(rb'\{"net_arch"|\{"activation_fn"', bytes(data))]
    assert starts, "the policy JSON is not in the file's global heap"
    for n, at in enumerate(starts):
        damaged = bytearray(data)
        damaged[at - 8] ^= 0x40  # the object's size, the 8 bytes before its data
        path = tmp_path / f"heap{n}.h5"
        path.write_bytes(bytes(damaged))
        reason = damaged_h5(path, timeout=15)
        assert reason is not None and ("hangs for over 15 s" in reason or "damaged" in reason), reason
