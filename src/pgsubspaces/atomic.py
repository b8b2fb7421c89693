"""Atomic outputs: write under a temporary name in the target's folder, rename on success.

An interrupted job therefore never leaves a file or folder that a later stage would accept. A killed job
(SIGKILL, out of memory, a lost node) leaves its temporary ``.<name>.tmp-<pid>`` behind; the next write of
the same target removes it (``remove_stale``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_stale(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove the temporaries in ``folder`` (of target ``name`` only, if given) whose writer is dead.

    Only temporaries whose pid is not a live process on this machine go: Snakemake never runs two jobs with
    the same output at once, so a dead writer's temporary can never be completed. Keeping those of live pids
    (also of another writer in this process, or a live pid another node's dead writer happened to share)
    costs at most a leftover, never someone's file in the making. Returns what was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match is None or (name is not None and match["name"] != name):
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not _alive(pid):
            _remove(entry)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` when the block succeeds.

    Works for files and folders. On an exception the temporary is removed and ``path`` is untouched.
    Temporaries of ``path`` left by killed writers are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, path.name)
    tmp = _temporary_sibling(path)
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
