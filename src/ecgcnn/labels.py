"""Label tasks: which SCP statements a record is positive for.

``top5`` is the original repository's task: the five most frequent diagnostic statements with
likelihood >= 50. The other six are the PTB-XL benchmark tasks of Strodthoff et al. (2020), built as
in their reference code: every key of scp_codes counts (no likelihood threshold), diagnostic codes
are mapped to their subclass or class, records with no label in the task are dropped, and the label
order is sorted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ecgcnn.errors import EcgcnnError
from ecgcnn.records import Database

BENCHMARK_TASKS: tuple[str, ...] = (
    "all", "diagnostic", "subdiagnostic", "superdiagnostic", "form", "rhythm",
)  # fmt: skip
TASKS: tuple[str, ...] = ("top5", *BENCHMARK_TASKS)
TOP5_MIN_LIKELIHOOD = 50.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Labels:
    """A multi-hot label matrix ``y`` (records x classes) for the records ``ecg_ids`` of one task."""

    task: str
    classes: tuple[str, ...]
    ecg_ids: np.ndarray
    y: np.ndarray

    def counts(self) -> dict[str, int]:
        return {c: int(n) for c, n in zip(self.classes, self.y.sum(axis=0), strict=True)}


def check_task(task: str) -> str:
    if task not in TASKS:
        raise EcgcnnError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return task


def task_statements(db: Database, task: str) -> pd.Series:
    """For each record, the set of labels it carries in ``task`` (before choosing classes)."""
    check_task(task)
    st = db.statements
    codes = db.records["scp_codes"]
    unknown = Counter(k for c in codes for k in c if k not in st.index)
    if unknown:
        listing = ", ".join(f"{k} ({n} record(s))" for k, n in sorted(unknown.items())[:5])
        log.warning("scp_codes %s not in scp_statements.csv: ignored", listing)
    if task == "top5":
        diagnostic = set(st.index[st["diagnostic"] == 1])
        return codes.map(
            lambda c: {k for k, v in c.items() if k in diagnostic and v >= TOP5_MIN_LIKELIHOOD}
        )
    if task == "all":
        known = set(st.index)
        return codes.map(lambda c: {k for k in c if k in known})
    if task in ("form", "rhythm"):
        known = set(st.index[st[task] == 1])
        return codes.map(lambda c: {k for k in c if k in known})
    diag = st[st["diagnostic"] == 1]
    if task == "diagnostic":
        return codes.map(lambda c: {k for k in c if k in diag.index})
    column = "diagnostic_subclass" if task == "subdiagnostic" else "diagnostic_class"
    mapping = {k: v for k, v in diag[column].items() if isinstance(v, str) and v}
    if len(mapping) < len(diag):
        log.warning(
            "diagnostic statement(s) %s have no %s in scp_statements.csv: they give no %s label",
            ", ".join(sorted(set(diag.index) - set(mapping))), column, task,
        )  # fmt: skip
    return codes.map(lambda c: {mapping[k] for k in c if k in mapping})


def choose_classes(statements: pd.Series, task: str) -> tuple[str, ...]:
    """top5: the five most frequent (ties by name); benchmark tasks: every label that occurs, sorted."""
    counts = Counter(label for labels in statements for label in labels)
    if task == "top5":
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if len(ranked) < 5:
            raise EcgcnnError(
                f"task top5 needs at least 5 diagnostic statements with likelihood >= 50; found {len(ranked)}"
            )
        return tuple(code for code, _ in ranked[:5])
    return tuple(sorted(counts))


def make_labels(db: Database, task: str, classes: tuple[str, ...] | None = None) -> Labels:
    """Labels of every record of ``db`` for ``task``; ``classes`` fixes the class list (e.g. a checkpoint's)."""
    per_record = task_statements(db, task)
    if classes is None:
        classes = choose_classes(per_record, task)
    if task != "top5":
        per_record = per_record[per_record.map(len) > 0]
        if per_record.empty:
            raise EcgcnnError(f"no record of {db.root} has a label in task {task!r}")
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(per_record), len(classes)), dtype=np.float32)
    for row, labels in enumerate(per_record):
        for label in labels:
            if label in index:
                y[row, index[label]] = 1.0
    return Labels(task, tuple(classes), per_record.index.to_numpy(dtype=np.int64), y)
