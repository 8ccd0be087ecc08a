"""Splits of records into train / validation / test, always keeping a patient's records together."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from ecgcnn.errors import EcgcnnError

PROTOCOLS: tuple[str, ...] = ("cv", "benchmark")


@dataclass(frozen=True)
class Split:
    """Row indices (into a Labels) of one fold's train, validation and optional test records."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray | None = None


def cv_folds(patient_ids: np.ndarray, y: np.ndarray, k: int = 5, seed: int = 42) -> np.ndarray:
    """Assign each record a fold 0..k-1: grouped by patient, multi-label stratified per patient.

    A patient's label vector is the union of its records' labels; iterative stratification
    (Sechidis et al. 2011, via iterative-stratification) balances those vectors across folds.
    """
    if k < 2:
        raise EcgcnnError(f"--folds must be at least 2 for cross-validation, got {k}")
    patients, inverse = np.unique(patient_ids, return_inverse=True)
    if k > len(patients):
        raise EcgcnnError(f"--folds {k} is larger than the number of patients ({len(patients)})")
    per_patient = np.zeros((len(patients), y.shape[1]), dtype=np.float32)
    np.maximum.at(per_patient, inverse, y)
    # A column of zeros gives the stratifier nothing to balance but is harmless; a patient without any
    # label still has to be placed, which it is. One column (one class) is refused by the
    # stratifier as binary: its complement makes it multi-label and is balanced the same way.
    if per_patient.shape[1] == 1:
        per_patient = np.hstack([per_patient, 1 - per_patient])
    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    patient_fold = np.empty(len(patients), dtype=np.int64)
    for fold, (_, test_idx) in enumerate(splitter.split(np.zeros(len(patients)), per_patient)):
        patient_fold[test_idx] = fold
    return patient_fold[inverse]


def cv_splits(folds: np.ndarray, k: int, test: np.ndarray | None = None) -> list[Split]:
    """One Split per fold: that fold validates, the others train; ``test`` rows (a holdout) everywhere."""
    return [
        Split(f"fold_{i}", np.flatnonzero(folds != i), np.flatnonzero(folds == i), test)
        for i in range(k)
    ]


def benchmark_split(
    strat_fold: np.ndarray, train_folds: list[int], val_fold: int, test_fold: int
) -> Split:
    """The PTB-XL benchmark split by strat_fold (default 1-8 train, 9 validation, 10 test)."""
    if val_fold == test_fold or val_fold in train_folds or test_fold in train_folds:
        raise EcgcnnError(
            f"train folds {train_folds}, validation fold {val_fold} and test fold {test_fold} must not overlap"
        )
    split = Split(
        "benchmark",
        np.flatnonzero(np.isin(strat_fold, train_folds)),
        np.flatnonzero(strat_fold == val_fold),
        np.flatnonzero(strat_fold == test_fold),
    )
    present = sorted(set(np.unique(strat_fold).tolist()))
    for part, rows, folds in (
        ("train", split.train, train_folds),
        ("validation", split.val, [val_fold]),
        ("test", split.test, [test_fold]),
    ):
        if len(rows) == 0:
            raise EcgcnnError(
                f"the {part} strat_fold(s) {folds} hold no records; this root has strat_folds {present}"
                + (
                    " (on data without fold 10, pass e.g. --val-fold 8 --test-fold 9)"
                    if 10 not in present
                    else " (choose the folds among those: --train-folds, --val-fold, --test-fold)"
                )
            )
    return split


def describe(split_rows: dict[str, np.ndarray], y: np.ndarray, classes: tuple[str, ...]) -> dict:
    """Sizes and label counts of each part, for the run's splits.json and the log."""
    return {
        name: {
            "records": len(rows),
            "label_counts": dict(
                zip(classes, y[rows].sum(axis=0).astype(int).tolist(), strict=True)
            ),
        }
        for name, rows in split_rows.items()
    }


def patient_leaks(patient_ids: pd.Series | np.ndarray, split: Split) -> dict[str, set]:
    """Patients with records in two parts of a strat_fold split, by the parts they join.

    PTB-XL's strat_folds keep each patient's records in one fold, so its splits have none; a
    user's own folds may not, and then the validation or test figures are optimistic.
    """
    leaks: dict[str, set] = {}
    both = patients_overlap(patient_ids, split.train, split.val)
    if both:
        leaks["validation and training"] = both
    if split.test is not None:
        both = patients_overlap(patient_ids, np.concatenate([split.train, split.val]), split.test)
        if both:
            leaks["test and training/validation"] = both
    return leaks


def patients_overlap(patient_ids: pd.Series | np.ndarray, a: np.ndarray, b: np.ndarray) -> set:
    """Patients that have records in both row sets (should be empty)."""
    pid = np.asarray(patient_ids)
    return set(pid[a].tolist()) & set(pid[b].tolist())
