"""Atomic writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; give the file the permissions an ordinary open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_open(path) as f:
        np.savez(f, **arrays)


def write_with(path: str | Path, writer: Callable[[BinaryIO], None]) -> None:
    """Atomic write through a function that writes to a file object (torch.save, savefig...)."""
    with atomic_open(path) as f:
        writer(f)


def unwritable(path: str | Path, folder: bool = False) -> str | None:
    """Why ``path`` could not be written (a file, or a ``folder`` to make), or None: checked before
    long work, so that its results are not lost to a typo at the end. Parents are made as the
    writes make them; the nearest one that exists must be a writable folder."""
    path = Path(path)
    if not folder and path.is_dir():
        return "is a folder; give a file name"
    if folder and path.exists() and not path.is_dir():
        return "is a file; give a folder"
    base = path if folder and path.is_dir() else path.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        return f"cannot be made: {base} is a file"
    try:
        fd, tmp = tempfile.mkstemp(dir=base, prefix=".ecgcnn-write-check.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return f"cannot be written in {base} ({exc.strerror or exc})"
    return None
