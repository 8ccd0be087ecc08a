"""Torch datasets over the record cache: a batch is one fancy-indexed slice of the memory map."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from ecgcnn.augment import Augment
from ecgcnn.windows import random_windows


class RecordDataset(Dataset):
    """ECGs ``data[rows]`` (12, T) with their label rows ``y``.

    With ``window``, one random crop of that many samples per record, re-drawn at every access (so
    every epoch sees other windows); then the batch goes through ``augment`` (noise, amplitude,
    baseline wander, lead dropout, mixup; see :mod:`ecgcnn.augment`), ``fs`` being its sampling rate.
    """

    def __init__(
        self,
        data: np.ndarray,
        rows: np.ndarray,
        y: np.ndarray,
        augment: Augment | None = None,
        generator: torch.Generator | None = None,
        window: int | None = None,
        fs: float = 100.0,
    ) -> None:
        if len(rows) != len(y):
            raise ValueError(f"{len(rows)} rows but {len(y)} label vectors")
        self.data, self.rows, self.y = data, np.asarray(rows), np.asarray(y, dtype=np.float32)
        self.augment, self.generator, self.window, self.fs = augment, generator, window, fs

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = np.asarray(indices)
        x = torch.from_numpy(np.ascontiguousarray(self.data[self.rows[idx]], dtype=np.float32))
        if self.window is not None:
            x = random_windows(x, self.window, self.generator)
        y = torch.from_numpy(self.y[idx])
        if self.augment is not None and self.augment.active:
            x, y = self.augment(x, y, self.generator, self.fs)
        return x, y

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([index])
        return x[0], y[0]


def collate_batch(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch is already stacked by ``__getitems__``."""
    return batch


def standardization(
    data: np.ndarray, rows: np.ndarray, max_records: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-lead mean and std over (a sample of at most ``max_records`` of) the training records."""
    rows = np.asarray(rows)
    if len(rows) > max_records:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_records, replace=False))
    x = np.asarray(data[rows], dtype=np.float64)
    mean = x.mean(axis=(0, 2))
    std = x.std(axis=(0, 2))
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)
