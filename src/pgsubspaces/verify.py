"""Check every file of an experiment for damage; optionally delete the damaged ones so Snakemake rebuilds them.

    python -m pgsubspaces.verify results/<experiment> [--remove]

Reads every attribute and every chunk of every dataset of each ``.h5`` below the folder through its
checksums (``h5io.verify_file``), and tests the CRCs of the training checkpoints' zips (``model.zip``,
``*.npz``). Prints one line per damaged file with the reason and exits 1 if there is any.

``--remove`` deletes each damaged HDF5 file; the next ``snakemake`` run rebuilds it and, as its
modification time is then newer, everything downstream of it. A damaged training checkpoint cannot be
rebuilt on its own: its checkpoint folder, every later one of that run and the run's ``training.json`` are
deleted, so the training job reruns and resumes from the last intact checkpoint (a resumed training is a new
training from there on, and everything of that run downstream is rebuilt).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

from pgsubspaces import h5io

_CHECKPOINT = re.compile(r"^step_(\d{9})$")
TIMEOUT = 600  # seconds for one file: a 1e6-transition run file reads in seconds


def damaged_h5(path: Path, timeout: int = TIMEOUT) -> str | None:
    """Why ``path`` is damaged, or None. Checked in a forked child: HDF5 can crash, or loop forever, on a
    damaged global heap (docs/hdf5.md, "Integrity")."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's cleanup
        os.close(read_end)
        signal.alarm(timeout)
        try:
            h5io.verify_file(path)
            reason = ""
        except h5io.RunFileError as error:
            reason = str(error).removeprefix(f"{path}: ")
        except Exception as error:  # noqa: BLE001 - anything else is damage too, reported by name
            reason = f"cannot be read ({type(error).__name__}: {error})"
        os.write(write_end, reason.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as stream:
        reason = stream.read().decode()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        how = f"hangs for over {timeout} s" if os.WTERMSIG(status) == signal.SIGALRM else "crashes HDF5"
        return f"reading it {how} (damaged metadata); {h5io.advice(path)}"
    return reason or None


def damaged_zip(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        return f"not a readable zip archive ({error})"
    except Exception as error:  # zlib.error and friends: a damaged deflate stream  # noqa: BLE001
        return f"a member cannot be decompressed ({type(error).__name__}: {error})"
    return f"member {bad!r} fails its CRC" if bad is not None else None


def problems(folder: Path) -> Iterator[tuple[Path, str]]:
    """(file, reason) for every damaged file below ``folder``, in path order."""
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):  # .name.tmp-<pid>: a write under way
            continue
        if path.suffix == ".h5":
            reason = damaged_h5(path)
        elif path.suffix in (".zip", ".npz") and _checkpoint_folder(path) is not None:
            reason = damaged_zip(path)
        else:
            continue
        if reason is not None:
            yield path, reason


def _checkpoint_folder(path: Path) -> Path | None:
    """The training checkpoint folder (``<run>/checkpoints/step_<step>``) that holds ``path``, if any."""
    parent = path.parent
    if _CHECKPOINT.match(parent.name) and parent.parent.name == "checkpoints":
        return parent
    return None


def remove(path: Path) -> list[Path]:
    """Delete a damaged file so that Snakemake rebuilds it; the paths deleted."""
    folder = _checkpoint_folder(path)
    if folder is None:
        path.unlink(missing_ok=True)
        return [path]
    run_dir = folder.parent.parent
    step = int(_CHECKPOINT.match(folder.name).group(1))
    removed = []
    for candidate in sorted((run_dir / "checkpoints").iterdir()):
        match = _CHECKPOINT.match(candidate.name)
        if match and int(match.group(1)) >= step:
            shutil.rmtree(candidate)
            removed.append(candidate)
    summary = run_dir / "training.json"
    if summary.exists():
        summary.unlink()
        removed.append(summary)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="results/<experiment> (or any folder below it)")
    parser.add_argument("--remove", action="store_true", help="delete the damaged files, so snakemake rebuilds them")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"{args.folder}: no such folder", file=sys.stderr)
        return 2
    checked = sum(1 for p in args.folder.rglob("*.h5") if p.is_file() and not p.name.startswith("."))
    found = 0
    for path, reason in problems(args.folder):
        found += 1
        print(f"DAMAGED {path}: {reason}")
        if args.remove:
            for gone in remove(path):
                print(f"  removed {gone}")
    if found:
        action = "removed; run snakemake to rebuild them" if args.remove else "rerun with --remove to delete them"
        print(f"{found} damaged file(s) under {args.folder} ({checked} HDF5 files checked); {action}")
        return 1
    print(f"no damage found under {args.folder} ({checked} HDF5 files checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
