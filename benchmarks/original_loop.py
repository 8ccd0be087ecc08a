"""The original repository's data path, rebuilt as the baseline for BENCHMARKS.md.

The seed code read each WFDB record from disk inside ``Dataset.__getitem__`` (every sample, every
epoch) and, per fold, walked the training set once more just to count positives for the class
weights. Only the data path is reproduced here; the model, loss and optimiser are ecgcnn's own, so
the comparison isolates what the record cache changes.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import wfdb
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ecgcnn.models import create_model
from ecgcnn.records import Database


class WfdbDataset(Dataset):
    """One WFDB read per sample, standardised per record, as the seed's data.py did."""

    def __init__(self, db: Database, ecg_ids: np.ndarray, y: np.ndarray) -> None:
        self.db, self.ecg_ids, self.y = db, ecg_ids, y

    def __len__(self) -> int:
        return len(self.ecg_ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        signal, _ = wfdb.rdsamp(str(self.db.record_path(int(self.ecg_ids[i]), 100)))
        x = (signal - signal.mean(axis=0)) / (signal.std(axis=0) + 1e-8)
        return torch.tensor(x.T, dtype=torch.float32), torch.tensor(self.y[i])


def class_weights_by_rereading(dataset: WfdbDataset) -> torch.Tensor:
    """The seed's way: iterate the whole training set (reading every record) to count labels."""
    pos = np.zeros(dataset.y.shape[1])
    for i in range(len(dataset)):
        _, y = dataset[i]
        pos += y.numpy()
    neg = len(dataset) - pos
    return torch.tensor(np.minimum(neg / np.maximum(pos, 1), 100.0), dtype=torch.float32)


def run_fold(
    db: Database,
    ids_train: np.ndarray,
    y_train: np.ndarray,
    ids_val: np.ndarray,
    y_val: np.ndarray,
    epochs: int = 10,
    batch_size: int = 16,
    seed: int = 42,
) -> float:
    """Train cnn1d on one fold the seed's way; returns wall seconds."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    train_set, val_set = WfdbDataset(db, ids_train, y_train), WfdbDataset(db, ids_val, y_val)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=class_weights_by_rereading(train_set))
    model = create_model("cnn1d", y_train.shape[1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        model.train()
        for x, y in DataLoader(train_set, batch_size=batch_size, shuffle=True):
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, _ in DataLoader(val_set, batch_size=batch_size):
                model(x)
    return time.perf_counter() - start
