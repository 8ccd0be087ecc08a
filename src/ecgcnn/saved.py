"""Reading back what a run saved (JSON, predictions): a damaged file is an error naming it.

The commands that rebuild from a run's files (report, leaderboard, cv-summary) read through these,
so a truncated or hand-edited file gives one line saying which file and what was expected, never a
traceback (and never an invitation to load pickled data).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ecgcnn.errors import EcgcnnError


def read_json(path: Path) -> Any:
    """The JSON in ``path``; unreadable or malformed is an :class:`EcgcnnError` naming the file."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EcgcnnError(f"{path}: not readable JSON ({exc})") from None


def read_predictions(
    path: Path, n_classes: int, keys: tuple[str, ...] = ("y_true", "y_prob", "ecg_ids")
) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of a predictions_*.npz, checked against (records, ``n_classes``)."""
    try:
        with np.load(path, allow_pickle=False) as p:
            arrays = {k: p[k] for k in keys}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise EcgcnnError(
            f"{path}: not readable predictions (expected {', '.join(keys)}; {exc})"
        ) from None
    records = len(next(iter(arrays.values())))
    for key in ("y_true", "y_prob"):
        if key in arrays and arrays[key].shape != (records, n_classes):
            raise EcgcnnError(
                f"{path}: {key} has shape {arrays[key].shape}; expected ({records} records, "
                f"{n_classes} classes)"
            )
    if "ecg_ids" in arrays and len(arrays["ecg_ids"]) != records:
        raise EcgcnnError(f"{path}: {len(arrays['ecg_ids'])} ecg_ids for {records} records")
    return arrays
