"""Checksummed HDF5 files: every file the workflow writes can tell when it is damaged.

HDF5 checks three things for us and misses one (docs/hdf5.md, "Integrity"):

- datasets: each is chunked with the fletcher32 filter, so a damaged chunk fails to read;
- object headers, link and chunk indexes, the superblock: checksummed in the 1.10 file format
  (``libver=LIBVER``); attribute values stored in an object header are covered by its checksum;
- string attributes: HDF5 keeps variable-length strings in its global heap, which has no checksum; a
  flipped byte there (a JSON hyperparameter, the file's ``algo``) would read back as a different value. So
  ``write_h5`` seals the file with a SHA-256 over every attribute (root attribute ``attributes_sha256``,
  fixed-length, inside the checksummed root header) and ``open_h5`` checks it.

Readers open files with ``open_h5`` and read with ``read``/``reading``; every failure becomes an
``IntegrityError`` naming the file, the object and what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pgsubspaces.atomic import atomic_path

LIBVER = ("v110", "latest")
DIGEST = "attributes_sha256"
READ_ERRORS = (OSError, KeyError, ValueError, RuntimeError, TypeError, UnicodeDecodeError)

# Every HDF5 format the workflow writes, and the version this code reads and writes (docs/hdf5.md).
# Version bumps of 2026-12: checksummed datasets and metadata, sealed attributes.
FORMATS = {"pgsubspaces-run": 2, "pgsubspaces-data": 2, "pgsubspaces-eigen": 3, "pgsubspaces-spectrum": 2}


def advice(path: str | Path) -> str:
    path = Path(path)
    folder = next((p for p in path.parents if p.parent.name == "results"), path.parent)
    return (
        f"delete it and rerun the job that wrote it (`python -m pgsubspaces.verify {folder} --remove` "
        "finds and deletes every damaged file; then run snakemake again)"
    )


class RunFileError(ValueError):
    """A workflow HDF5 file is missing, unreadable, of another format or version, or lacks a key; the message
    names the file (``pgsubspaces.export.runfile`` re-exports it)."""


class IntegrityError(RunFileError):
    """A file is damaged: a checksum fails, it is truncated or cannot be decoded; the message names the file,
    the object and what to do."""


def damaged(path: str | Path, what: str, error: BaseException | str) -> IntegrityError:
    return IntegrityError(f"{path}: {what} is damaged ({error}); {advice(path)}")


def unreadable(path: str | Path, error: BaseException) -> IntegrityError:
    return IntegrityError(f"{path}: not a readable HDF5 file, corrupt or truncated, damaged ({error}); {advice(path)}")


# -- writing -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def write_h5(path: str | Path) -> Iterator[h5py.File]:
    """An HDF5 file written atomically in the checksummed format and sealed when the block succeeds."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w", libver=LIBVER) as f:
        yield f
        seal(f)


def create_dataset(group: h5py.Group, name: str, data: Any, **kwargs) -> h5py.Dataset:
    """``group.create_dataset`` chunked with the fletcher32 checksum. Strings are stored fixed-length
    (UTF-8 bytes: variable-length ones live in the unchecked global heap) and read back as bytes.
    Scalars cannot be chunked: store them as attributes."""
    array = np.asarray(data)
    if array.dtype.kind in "UO":
        array = np.array([str(item).encode("utf-8") for item in array.ravel()], dtype=bytes).reshape(array.shape)
        if array.size == 0:
            array = array.astype("S1")
    if array.ndim == 0:
        raise ValueError(f"{group.name}/{name}: a scalar dataset cannot carry a checksum; store it as an attribute")
    if array.size == 0:  # a chunk needs a non-zero extent
        kwargs.setdefault("chunks", (1,) * array.ndim)
        kwargs.setdefault("maxshape", (None,) * array.ndim)
    kwargs.setdefault("chunks", True)
    return group.create_dataset(name, data=array, fletcher32=True, **kwargs)


def _value_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return b"s" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return b"b" + value
    if isinstance(value, h5py.Empty):
        return b"e" + str(value.dtype).encode()
    array = np.asarray(value)
    if array.dtype.kind == "O":
        return b"o" + repr(array.shape).encode() + b"".join(_framed(_value_bytes(item)) for item in array.ravel())
    return array.dtype.str.encode() + repr(array.shape).encode() + array.tobytes()


def _framed(data: bytes) -> bytes:
    return len(data).to_bytes(8, "little") + data


def attributes_digest(f: h5py.File) -> str:
    """SHA-256 over every object's name and every attribute's name and value (the seal itself left out)."""
    digest = hashlib.sha256()
    objects = [("/", f)]
    f.visititems(lambda name, obj: objects.append((name, obj)))
    for name, obj in objects:
        digest.update(_framed(name.encode()))
        for key in sorted(obj.attrs):
            if obj is f and key == DIGEST:
                continue
            digest.update(_framed(key.encode()) + _framed(_value_bytes(obj.attrs[key])))
    return digest.hexdigest()


def seal(f: h5py.File) -> None:
    """Store the attributes' digest (fixed-length, so it sits in the checksummed root header)."""
    f.attrs[DIGEST] = np.bytes_(attributes_digest(f))


# -- reading -------------------------------------------------------------------------------------------


def open_h5(path: str | Path, what: str, file_format: str, version: int) -> h5py.File:
    """Open a file of ``file_format`` at ``version`` for reading, its attributes checked against the seal.

    Raises:
        RunFileError: missing, another format, or another version (written by older code: rerun).
        IntegrityError: unreadable, truncated, or an attribute differs from what was written.
    """
    path = Path(path)
    if not path.exists():
        raise RunFileError(f"{path}: no such {what}")
    try:
        f = h5py.File(path, "r")
    except READ_ERRORS as error:
        raise unreadable(path, error) from None
    try:
        found, found_version = f.attrs.get("format"), f.attrs.get("format_version")
        if found != file_format:
            raise RunFileError(f"{path}: attribute 'format' is {found!r}, expected {file_format!r} (a {what})")
        if found_version != version:
            raise RunFileError(
                f"{path}: format_version {found_version}, this code reads {version}: the {what} was written by "
                f"another version of the workflow; delete it and rerun the job that wrote it"
            )
        check_seal(f, path)
    except RunFileError:
        f.close()
        raise
    except READ_ERRORS as error:
        f.close()
        raise damaged(path, "the file's metadata", error) from None
    return f


def check_seal(f: h5py.File, path: str | Path) -> None:
    stored = f.attrs.get(DIGEST)
    if stored is None:
        raise damaged(path, f"the seal '{DIGEST}'", "missing: written elsewhere or edited by hand")
    if attributes_digest(f) != bytes(stored).decode("ascii", "replace"):
        raise damaged(path, "an attribute", "its values differ from those written: attributes_sha256 does not match")


@contextlib.contextmanager
def reading(path: str | Path, what: str) -> Iterator[None]:
    """Turn any h5py failure inside the block into an IntegrityError naming ``path`` and ``what``; a missing
    object into a RunFileError."""
    try:
        yield
    except RunFileError:
        raise
    except KeyError as error:
        if "doesn't exist" in str(error):
            raise RunFileError(f"{path}: missing {what} ({error}); the file is incomplete: {advice(path)}") from None
        raise damaged(path, what, error) from None
    except READ_ERRORS as error:
        raise damaged(path, what, error) from None


def read(f: h5py.File | h5py.Group, key: str, path: str | Path | None = None) -> np.ndarray:
    """The whole dataset ``key`` of ``f``; errors name the file and the dataset."""
    path = path if path is not None else f.file.filename
    name = f"{f.name.rstrip('/')}/{key}"
    with reading(path, f"'{name}'"):
        return f[key][()]


@contextlib.contextmanager
def exit_on_file_errors() -> Iterator[None]:
    """For the stages' command lines: a missing, old or damaged file ends the job with its message (exit
    status 1), not a traceback."""
    try:
        yield
    except RunFileError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def verify_file(path: str | Path) -> None:
    """Read every attribute and every chunk of every dataset of ``path``; raise on the first damage.

    The file must be of one of the workflow's ``FORMATS`` at its current version, and sealed.
    """
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except READ_ERRORS as error:
        raise unreadable(path, error) from None
    with f:
        with reading(path, "the file's metadata"):
            found = f.attrs.get("format")
            expected = FORMATS.get(found)
            if expected is None:
                raise RunFileError(f"{path}: attribute 'format' is {found!r}, not a file of this workflow")
            if f.attrs.get("format_version") != expected:
                raise RunFileError(
                    f"{path}: format_version {f.attrs.get('format_version')}, this code reads {expected} (older code)"
                )
            check_seal(f, path)
            datasets: list[h5py.Dataset] = []
            f.visititems(lambda _, obj: datasets.append(obj) if isinstance(obj, h5py.Dataset) else None)
        for dataset in datasets:
            with reading(path, f"'{dataset.name}'"):
                if dataset.chunks is None:
                    raise IntegrityError(f"{path}: '{dataset.name}' is not chunked, so it carries no checksum")
                if not dataset.fletcher32:
                    raise IntegrityError(f"{path}: '{dataset.name}' has no fletcher32 checksum")
                for selection in dataset.iter_chunks() if dataset.size else ():
                    dataset[selection]
