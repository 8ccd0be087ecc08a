"""Windows of a record: random crops for training, sliding windows and their aggregation for testing.

The PTB-XL benchmark trains on random 2.5 s windows, re-drawn every epoch, and scores a 10 s record by
the maximum (or mean) of the predictions of 2.5 s windows at a 1.25 s stride, the last window aligned
to the end of the record: 7 windows at 100 Hz (starts 0, 125, ..., 750).
Everything is vectorised indexing: no Python loop over records.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from ecgcnn.errors import EcgcnnError

Aggregation = Literal["max", "mean"]
AGGREGATIONS = ("max", "mean")


def _as_tensor(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    x = torch.as_tensor(x)
    if x.ndim != 3:
        raise EcgcnnError(f"{name} must be (records, leads, samples), got shape {tuple(x.shape)}")
    return x


def _check_length(length: int, samples: int, what: str) -> int:
    if int(length) != length or length < 1:
        raise EcgcnnError(f"{what} length must be a positive integer, got {length!r}")
    if length > samples:
        raise EcgcnnError(
            f"{what} length {length} is longer than the records ({samples} samples): "
            "choose a shorter window"
        )
    return int(length)


def window_starts(samples: int, length: int, stride: int) -> np.ndarray:
    """Starts of sliding windows every ``stride`` samples, plus one aligned to the end if needed."""
    length = _check_length(length, samples, "window")
    if int(stride) != stride or stride < 1:
        raise EcgcnnError(f"window stride must be a positive integer, got {stride!r}")
    starts = np.arange(0, samples - length + 1, int(stride))
    if starts[-1] != samples - length:
        starts = np.append(starts, samples - length)
    return starts


def random_windows(
    data_batch: torch.Tensor | np.ndarray,
    length: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One random crop of ``length`` samples per record: (records, leads, length).

    Each record gets its own start, uniform over every position that keeps the window inside the
    record. A NumPy batch is wrapped without copying; the crops are a new tensor.
    """
    x = _as_tensor(data_batch, "data_batch")
    records, leads, samples = x.shape
    length = _check_length(length, samples, "window")
    starts = torch.randint(0, samples - length + 1, (records, 1), generator=generator)
    index = (starts + torch.arange(length)).unsqueeze(1).expand(records, leads, length)
    return torch.gather(x, 2, index.to(x.device))


def sliding_windows(x: torch.Tensor | np.ndarray, length: int, stride: int) -> torch.Tensor:
    """Windows covering each record: (records, n_windows, leads, length).

    Starts every ``stride`` samples; when that leaves the tail uncovered, one more window is aligned
    to the end, so every sample is seen (10 s at 100 Hz with 250 / 125 gives 7 windows).
    Reshape to (records * n_windows, leads, length) for the model and back for :func:`aggregate`.
    """
    x = _as_tensor(x, "x")
    records, leads, samples = x.shape
    starts = torch.from_numpy(window_starts(samples, length, stride)).to(x.device)
    index = starts[:, None] + torch.arange(int(length), device=x.device)  # (n_windows, length)
    shape = (records, len(starts), leads, int(length))
    # one gather from a broadcast view: a single contiguous copy, so a later reshape is free
    source = x.unsqueeze(1).expand(records, len(starts), leads, samples)
    return torch.gather(source, 3, index[None, :, None, :].expand(shape))


def aggregate(
    probs: torch.Tensor | np.ndarray, how: Aggregation = "max"
) -> torch.Tensor | np.ndarray:
    """Combine per-window predictions (records, n_windows, classes) into (records, classes).

    ``max`` is the benchmark's choice (a finding seen in any window counts), ``mean`` the option.
    Returns the same kind of array it was given.
    """
    if how not in AGGREGATIONS:
        raise EcgcnnError(f"unknown aggregation {how!r}; expected one of {', '.join(AGGREGATIONS)}")
    if probs.ndim != 3:
        raise EcgcnnError(
            f"window predictions must be (records, windows, classes), got shape {tuple(probs.shape)}"
        )
    if isinstance(probs, torch.Tensor):
        return probs.amax(dim=1) if how == "max" else probs.mean(dim=1)
    probs = np.asarray(probs)
    return probs.max(axis=1) if how == "max" else probs.mean(axis=1)
