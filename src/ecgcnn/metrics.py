"""Multi-label metrics: PR-AUC, ROC-AUC, F1, precision and recall, macro, micro and per class.

A class without positives (or without negatives) in a split has no defined AUC: it gets ``None``
(``null`` in JSON) and is left out of the macro means, with a warning, never a silent 0.0.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

log = logging.getLogger(__name__)
FALLBACK_THRESHOLD = 0.5


def _mean(values: list[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def compute_metrics(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    classes: tuple[str, ...] | list[str],
    thresholds: np.ndarray | list[float] | float = FALLBACK_THRESHOLD,
    warn: bool = True,
) -> dict:
    """Every metric of one split; labels are ``y_prob >= thresholds`` (per class or one value)."""
    y_true = np.asarray(y_true).astype(int)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_true.shape != y_prob.shape or y_true.ndim != 2 or y_true.shape[1] != len(classes):
        raise ValueError(
            f"y_true {y_true.shape} and y_prob {y_prob.shape} must both be (records, {len(classes)})"
        )
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (len(classes),))
    y_pred = (y_prob >= thr).astype(int)
    per_class: dict[str, dict] = {}
    undefined = []
    for j, name in enumerate(classes):
        t, p = y_true[:, j], y_prob[:, j]
        positives = int(t.sum())
        defined = 0 < positives < len(t)
        if not defined:
            undefined.append(name)
        per_class[name] = {
            "support": positives,
            "pr_auc": float(average_precision_score(t, p)) if defined else None,
            "roc_auc": float(roc_auc_score(t, p)) if defined else None,
            "f1": float(f1_score(t, y_pred[:, j], zero_division=0)),
            "precision": float(precision_score(t, y_pred[:, j], zero_division=0)),
            "recall": float(recall_score(t, y_pred[:, j], zero_division=0)),
            "threshold": float(thr[j]),
        }
    if undefined and warn:
        log.warning(
            "class(es) %s have no positives or no negatives in this split: AUCs are null and left "
            "out of the macro means (as are F1, precision and recall of a class without positives)",
            ", ".join(undefined),
        )
    values = list(per_class.values())
    # label metrics of a class with no positives say nothing (its recall is 0/0): left out of the
    # macro means like its AUCs; micro F1 still counts its false positives
    scored = [v for v in values if v["support"] > 0]
    return {
        "records": int(len(y_true)),
        "pr_auc_macro": _mean([v["pr_auc"] for v in values]),
        "roc_auc_macro": _mean([v["roc_auc"] for v in values]),
        "f1_macro": _mean([v["f1"] for v in scored]),
        "f1_micro": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "precision_macro": _mean([v["precision"] for v in scored]),
        "recall_macro": _mean([v["recall"] for v in scored]),
        "classes_without_auc": undefined,
        "per_class": per_class,
    }


def tune_thresholds(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[list[float], list[str]]:
    """Per-class thresholds maximising F1 on these predictions.

    A class without positives gets the 0.5 fallback, marked ``"fallback"``; others ``"tuned"``.
    """
    thresholds, sources = [], []
    for j in range(y_true.shape[1]):
        t = np.asarray(y_true[:, j]).astype(int)
        if t.sum() == 0:
            thresholds.append(FALLBACK_THRESHOLD)
            sources.append("fallback")
            continue
        precision, recall, thr = precision_recall_curve(t, y_prob[:, j])
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1[:-1]))  # the last point has no threshold
        thresholds.append(float(thr[best]))
        sources.append("tuned")
    return thresholds, sources


def summarize(fold_metrics: list[dict], keys: tuple[str, ...] | None = None) -> dict:
    """Mean and standard deviation over folds of each scalar metric (undefined values skipped)."""
    keys = keys or (
        "pr_auc_macro", "roc_auc_macro", "f1_macro", "f1_micro", "precision_macro", "recall_macro",
    )  # fmt: skip
    out = {}
    for key in keys:
        values = [m[key] for m in fold_metrics if m.get(key) is not None]
        out[key] = {
            "mean": float(np.mean(values)) if values else None,
            "std": float(np.std(values)) if values else None,
            "n": len(values),
        }
    return out
