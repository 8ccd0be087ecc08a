"""Bootstrap confidence intervals of macro ROC-AUC and macro PR-AUC on a test set, as in the benchmark.

Strodthoff et al. report the macro AUC on the whole test fold with a 90% interval from 100 bootstrap
resamples of its records, keeping only resamples that hold every class (an AUC needs positives).
Here classes the full test set cannot score (too few positives, or no negatives) are left out first
and listed, and the redrawing stops at a cap with an :class:`EcgcnnError` instead of hanging.

The resamples depend only on the labels of the evaluated classes, ``n_resamples`` and ``seed``: two
models scored on the same test set with the same seed see the same resamples, whether they go through
:func:`paired_bootstrap_auc` together or through :func:`bootstrap_auc` one at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ecgcnn.errors import BootstrapError, EcgcnnError

log = logging.getLogger(__name__)

DEFAULT_RESAMPLES = 100
DEFAULT_LEVEL = 0.9
# with a class of one positive among n records, a resample holds it with probability ~0.63; ten such
# classes accept ~1% of draws, so the cap allows for rare classes before it gives up
DRAWS_PER_RESAMPLE = 1000


@dataclass(frozen=True)
class Interval:
    """A statistic on the full test set, its bootstrap mean and its percentile interval."""

    point: float
    mean: float
    lower: float
    upper: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class BootstrapResult:
    """Macro ROC-AUC and PR-AUC with their intervals over the evaluated classes."""

    roc_auc: Interval
    pr_auc: Interval
    classes: list[str]
    excluded: list[str]
    n_resamples: int
    level: float
    seed: int
    draws: int  # resamples drawn, the rejected ones included

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PairedBootstrapResult:
    """Two models on the same resamples: each one's intervals and the interval of ``a - b``."""

    a: BootstrapResult
    b: BootstrapResult
    roc_auc_diff: Interval
    pr_auc_diff: Interval

    def to_dict(self) -> dict:
        return asdict(self)


def _check_labels(
    y_true: np.ndarray, classes: Sequence[str] | None
) -> tuple[np.ndarray, list[str]]:
    y = np.asarray(y_true)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 1:
        raise EcgcnnError(f"y_true must be (records >= 2, classes >= 1), got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise EcgcnnError("y_true must hold only 0 and 1 (one column per class)")
    names = (
        [str(c) for c in classes] if classes is not None else [str(j) for j in range(y.shape[1])]
    )
    if len(names) != y.shape[1]:
        raise EcgcnnError(f"{len(names)} class names given for {y.shape[1]} label columns")
    return y.astype(np.int8), names


def _check_probs(y_prob: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    p = np.asarray(y_prob, dtype=np.float64)
    if p.shape != shape:
        raise EcgcnnError(f"{name} has shape {p.shape}; expected {shape}, the shape of y_true")
    if not np.isfinite(p).all():
        raise EcgcnnError(f"{name} holds NaN or infinite values")
    return p


def _check_settings(n_resamples: int, level: float) -> None:
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise EcgcnnError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if not 0.0 < level < 1.0:
        raise EcgcnnError(f"level must be between 0 and 1 (0.9 for a 90% interval), got {level}")


def evaluable_classes(y_true: np.ndarray, min_positives: int = 1) -> np.ndarray:
    """Mask of the classes with at least ``min_positives`` positives and one negative."""
    y = np.asarray(y_true)
    positives = y.sum(axis=0)
    return (positives >= max(1, min_positives)) & (positives < len(y))


def bootstrap_indices(
    y_true: np.ndarray,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    max_draws: int | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[np.ndarray, int]:
    """Resamples of the records (with replacement) that hold a positive and a negative of every class.

    Returns the (n_resamples, records) record indices and the number of draws it took. Raises
    :class:`EcgcnnError` at once for a class no resample can hold (no positives or no negatives),
    and :class:`BootstrapError` after ``max_draws`` draws (default 1000 per resample) without
    enough resamples; ``classes`` names the classes in those messages.
    """
    y = np.asarray(y_true).astype(bool)
    records, n_classes = y.shape
    names = list(classes) if classes is not None else [str(j) for j in range(n_classes)]
    counts = y.sum(axis=0)
    impossible = [names[j] for j in np.flatnonzero((counts == 0) | (counts == records))]
    if impossible:
        raise EcgcnnError(
            f"class(es) {', '.join(impossible)} have no positives or no negatives in the "
            f"{records} records, so no resample can hold them: leave them out first"
        )
    cap = DRAWS_PER_RESAMPLE * n_resamples if max_draws is None else int(max_draws)
    # the positive records of each class, class after class, for one segmented sum per chunk
    label_class, label_record = np.nonzero(y.T)
    segments = np.searchsorted(label_class, np.arange(n_classes))
    rng = np.random.default_rng(seed)
    accepted: list[np.ndarray] = []
    draws = 0
    while len(accepted) < n_resamples:
        if draws >= cap:
            rarest = ", ".join(
                f"{names[j]} ({int(counts[j])})" for j in np.argsort(counts, kind="stable")[:5]
            )
            raise BootstrapError(
                f"only {len(accepted)} of {n_resamples} bootstrap resamples held every class after "
                f"{draws} draws (the cap); rarest classes (positives in {records} records): "
                f"{rarest}; leave out rare classes (min_positives) or raise max_draws"
            )
        chunk = min(n_resamples, cap - draws)
        index = rng.integers(0, records, size=(chunk, records))
        # positives of each class in each resample: how often its positive records were drawn
        drawn = _multiplicity(index, records)[:, label_record]
        positives = np.add.reduceat(drawn, segments, axis=1)
        ok = np.flatnonzero(((positives > 0) & (positives < records)).all(axis=1))
        needed = n_resamples - len(accepted)
        taken = ok[:needed]
        accepted.extend(index[taken])
        draws += int(taken[-1]) + 1 if len(taken) == needed else chunk
    return np.stack(accepted), draws


def _multiplicity(index: np.ndarray, records: int) -> np.ndarray:
    """How often each record was drawn in each resample: (resamples, records)."""
    offsets = (index + records * np.arange(len(index))[:, None]).ravel()
    return np.bincount(offsets, minlength=len(index) * records).reshape(len(index), records)


def _macro_aucs(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Macro ROC-AUC and PR-AUC of each resample, given as record multiplicities (rows of ``weights``).

    A resample holds the same scores as the full set, repeated, so each class is sorted once and
    every resample is a weighted sum along that order: no sort per resample. Tied scores form one
    threshold; ROC-AUC is the trapezoid area and PR-AUC the average precision (recall gain times
    precision at each threshold), both as sklearn computes them on the resampled records.
    """
    weights = weights.astype(np.float64)
    roc = np.zeros(len(weights))
    pr = np.zeros(len(weights))
    for j in range(y.shape[1]):
        order = np.argsort(-p[:, j], kind="stable")
        scores, positive = p[order, j], y[order, j].astype(np.float64)
        # the last record of each run of equal scores closes a threshold
        closes = np.append(scores[:-1] != scores[1:], True)
        w = weights[:, order]
        true_pos = np.cumsum(w * positive, axis=1)[:, closes]
        false_pos = np.cumsum(w * (1.0 - positive), axis=1)[:, closes]
        tp_gain = np.diff(true_pos, axis=1, prepend=0.0)
        fp_gain = np.diff(false_pos, axis=1, prepend=0.0)
        positives, negatives = true_pos[:, -1], false_pos[:, -1]
        roc += (fp_gain * (true_pos - tp_gain / 2)).sum(axis=1) / (positives * negatives)
        # a threshold whose records were not drawn adds no gain; max(., 1) only avoids 0 / 0
        precision = true_pos / np.maximum(true_pos + false_pos, 1.0)
        pr += (tp_gain * precision).sum(axis=1) / positives
    return roc / y.shape[1], pr / y.shape[1]


def _interval(point: float, samples: np.ndarray, level: float) -> Interval:
    tail = (1.0 - level) / 2
    lower, upper = np.quantile(samples, [tail, 1.0 - tail])
    return Interval(float(point), float(samples.mean()), float(lower), float(upper))


def _bootstrap(
    y_true: np.ndarray,
    probs: dict[str, np.ndarray],
    classes: Sequence[str] | None,
    n_resamples: int,
    level: float,
    seed: int,
    max_draws: int | None,
    min_positives: int,
    warn: bool = True,
) -> list[tuple[BootstrapResult, np.ndarray, np.ndarray]]:
    """Each model's result and its per-resample macro ROC-AUC and PR-AUC, on shared resamples."""
    _check_settings(n_resamples, level)
    y, names = _check_labels(y_true, classes)
    checked = [_check_probs(p, y.shape, name) for name, p in probs.items()]
    keep = evaluable_classes(y, min_positives)
    excluded = [n for n, k in zip(names, keep, strict=True) if not k]
    if not keep.any():
        raise EcgcnnError(
            f"no class has at least {max(1, min_positives)} positive(s) and one negative in the "
            f"{len(y)} test records: nothing to bootstrap"
        )
    if excluded and warn:
        log.warning(
            "%d class(es) without enough positives (or without negatives) in the test set are left "
            "out of the bootstrap: %s",
            len(excluded),
            ", ".join(excluded),
        )
    y = y[:, keep]
    kept = [n for n, k in zip(names, keep, strict=True) if k]
    index, draws = bootstrap_indices(y, n_resamples, seed, max_draws, kept)
    weights = _multiplicity(index, len(y))
    everyone = np.ones((1, len(y)))
    out = []
    for p in checked:
        (roc_point,), (pr_point,) = _macro_aucs(y, p[:, keep], everyone)
        roc, pr = _macro_aucs(y, p[:, keep], weights)
        result = BootstrapResult(
            roc_auc=_interval(roc_point, roc, level),
            pr_auc=_interval(pr_point, pr, level),
            classes=kept,
            excluded=excluded,
            n_resamples=int(n_resamples),
            level=float(level),
            seed=int(seed),
            draws=draws,
        )
        out.append((result, roc, pr))
    return out


def bootstrap_auc(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    classes: Sequence[str] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    max_draws: int | None = None,
    min_positives: int = 1,
    warn: bool = True,
) -> BootstrapResult:
    """Macro ROC-AUC and PR-AUC on the test set with a ``level`` percentile bootstrap interval.

    ``y_true`` and ``y_prob`` are (records, classes). Classes with fewer than ``min_positives``
    positives (at least 1) or without negatives are left out and listed in ``excluded`` (with a
    warning unless ``warn`` is False).
    """
    ((result, _, _),) = _bootstrap(
        y_true,
        {"y_prob": y_prob},
        classes,
        n_resamples,
        level,
        seed,
        max_draws,
        min_positives,
        warn,
    )
    return result


def paired_bootstrap_auc(
    y_true: np.ndarray,
    y_prob_a: np.ndarray,
    y_prob_b: np.ndarray,
    classes: Sequence[str] | None = None,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
    max_draws: int | None = None,
    min_positives: int = 1,
    warn: bool = True,
) -> PairedBootstrapResult:
    """Two models' predictions on the same records: the interval of the AUC difference ``a - b``.

    Both models are scored on the same resamples, so the difference's interval reflects the gap
    between the models rather than which records happened to be drawn; an interval above zero
    says ``a`` is better beyond resampling noise.
    """
    (a, roc_a, pr_a), (b, roc_b, pr_b) = _bootstrap(
        y_true,
        {"y_prob_a": y_prob_a, "y_prob_b": y_prob_b},
        classes,
        n_resamples,
        level,
        seed,
        max_draws,
        min_positives,
        warn,
    )
    return PairedBootstrapResult(
        a=a,
        b=b,
        roc_auc_diff=_interval(a.roc_auc.point - b.roc_auc.point, roc_a - roc_b, level),
        pr_auc_diff=_interval(a.pr_auc.point - b.pr_auc.point, pr_a - pr_b, level),
    )
