"""Evaluation: metrics JSON and one confusion-matrix PNG per class, from saved predictions or a checkpoint."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix  # noqa: E402
from torch import nn  # noqa: E402

from ecgcnn import atomic  # noqa: E402
from ecgcnn.errors import EcgcnnError  # noqa: E402
from ecgcnn.metrics import compute_metrics  # noqa: E402
from ecgcnn.saved import read_json, read_predictions  # noqa: E402
from ecgcnn.windows import aggregate as aggregate_windows  # noqa: E402
from ecgcnn.windows import sliding_windows  # noqa: E402

if TYPE_CHECKING:
    from ecgcnn.recording import ResampledRecords

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    data: np.ndarray | ResampledRecords,
    rows: np.ndarray,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    window: int | None = None,
    stride: int | None = None,
    aggregate: str = "max",
) -> np.ndarray:
    """Sigmoid probabilities of ``model`` for the ECGs ``data[rows]`` (each (12, T)), read a batch
    of rows at a time.

    With ``window``, each record is scored as sliding windows (``stride`` apart, the last aligned to
    the end) whose probabilities are aggregated by max or mean, as the model was trained.
    """
    if len(rows) == 0:
        raise EcgcnnError("no records to predict")
    model.eval()
    out = []
    per_batch = batch_size if window is None else max(batch_size // 8, 1)
    for start in range(0, len(rows), per_batch):
        x = torch.from_numpy(
            np.ascontiguousarray(data[rows[start : start + per_batch]], dtype=np.float32)
        )
        if window is None:
            out.append(torch.sigmoid(model(x.to(device))).cpu().numpy())
            continue
        w = sliding_windows(x, window, stride or max(window // 2, 1))
        prob = torch.sigmoid(model(w.flatten(0, 1).to(device))).reshape(w.shape[0], w.shape[1], -1)
        out.append(aggregate_windows(prob, aggregate).cpu().numpy())
    return np.concatenate(out)


def checkpoint_windows(meta: dict[str, Any]) -> dict[str, Any]:
    """The window settings a checkpoint was trained with (whole records for older checkpoints)."""
    return {
        k: meta.get(k, d) for k, d in (("window", None), ("stride", None), ("aggregate", "max"))
    }


def safe_name(label: str) -> str:
    """A file-name-safe form of a statement code (LAO/LAE -> LAO-LAE)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "class"


def plot_confusion_matrices(
    y_true: np.ndarray, y_prob: np.ndarray, classes: list[str], thresholds: np.ndarray, out: Path,
    prefix: str = "confusion",
) -> list[Path]:  # fmt: skip
    """One PNG per class: the 2 x 2 confusion matrix at that class's threshold."""
    paths = []
    for j, name in enumerate(classes):
        pred = (y_prob[:, j] >= thresholds[j]).astype(int)
        cm = confusion_matrix(y_true[:, j].astype(int), pred, labels=[0, 1])
        fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=110)
        ConfusionMatrixDisplay(cm, display_labels=["absent", "present"]).plot(
            ax=ax, cmap="Blues", colorbar=False, values_format="d"
        )
        ax.set_title(f"{name} (threshold {thresholds[j]:.2f})", fontsize=10)
        fig.tight_layout()
        path = out / f"{prefix}_{safe_name(name)}.png"
        atomic.write_with(path, lambda f, fig=fig: fig.savefig(f, format="png"))
        plt.close(fig)
        paths.append(path)
    return paths


def write_evaluation(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    ecg_ids: np.ndarray,
    classes: list[str],
    thresholds: np.ndarray,
    out: Path,
    split: str,
    extra: dict[str, Any] | None = None,
    save_predictions: bool = True,
) -> dict[str, Any]:
    """Metrics JSON and confusion matrices (and the predictions, unless saved already)."""
    metrics = (
        compute_metrics(y_true, y_prob, classes, thresholds) | {"split": split} | (extra or {})
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / f"metrics_{split}.json", metrics)
    if save_predictions:
        atomic.write_npz(
            out / f"predictions_{split}.npz", y_true=y_true, y_prob=y_prob, ecg_ids=ecg_ids
        )
    metrics["plots"] = [str(p) for p in plot_confusion_matrices(
        y_true, y_prob, classes, thresholds, out, prefix=f"confusion_{split}")]  # fmt: skip
    return metrics


def stored_thresholds(checkpoint_meta: dict[str, Any], override: float | None) -> np.ndarray:
    n = len(checkpoint_meta["classes"])
    if override is not None:
        if not 0.0 <= override <= 1.0:
            raise EcgcnnError(f"--threshold must be between 0 and 1, got {override}")
        return np.full(n, override)
    return np.asarray(checkpoint_meta["thresholds"], dtype=np.float64)


def evaluate_run(
    run_dir: str | Path, fold: int | None = None, threshold: float | None = None
) -> dict[str, dict[str, Any]]:
    """Re-score a run's saved predictions (no retraining); writes to each ``fold/evaluation/``."""
    from ecgcnn.checkpoint import load_checkpoint

    run = Path(run_dir)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise EcgcnnError(f"{run} is not a run folder (no config.json)")
    config = read_json(config_path)
    if not isinstance(config, dict) or "fold_names" not in config:
        raise EcgcnnError(f"{config_path}: missing 'fold_names'; was it written by ecgcnn train?")
    names = config["fold_names"]
    if fold is not None:
        if not 0 <= fold < len(names):
            raise EcgcnnError(f"--fold {fold} is not a fold of this run (0..{len(names) - 1})")
        names = [names[fold]]
    results = {}
    for name in names:
        fold_dir = run / name
        if not (fold_dir / "checkpoint.pt").is_file():
            raise EcgcnnError(f"{fold_dir}: no checkpoint.pt (fold not trained yet?)")
        meta = load_checkpoint(fold_dir / "checkpoint.pt")
        thr = stored_thresholds(meta, threshold)
        for split in ("val", "test"):
            pred_path = fold_dir / f"predictions_{split}.npz"
            if not pred_path.is_file():
                continue
            p = read_predictions(pred_path, len(meta["classes"]))
            results[f"{name}/{split}"] = write_evaluation(
                p["y_true"], p["y_prob"], p["ecg_ids"], meta["classes"], thr, fold_dir / "evaluation",
                split, {"fold": name, "thresholds": "override" if threshold is not None else "stored"},
                save_predictions=False,
            )  # fmt: skip
    return results


def warn_if_trained_on(
    config: dict[str, Any],
    test_fold: int | None,
    checkpoint: object,
    seen: list[int] | None = None,
    present: Iterable[int] | None = None,
    same_root: bool = False,
) -> None:
    """Warn when the scored strat_fold(s) trained the checkpoint (PTB-XL's folds are the same in
    every copy): such figures are optimistic, not a test. ``seen``: the strat_folds of its training
    and validation records, as checkpoints store them; older ones are judged by their settings.
    ``present``: the strat_folds of the scored root (without ``test_fold``); None: any.
    ``same_root``: the scored root is the one it trained on (for records without a strat_fold)."""
    from ecgcnn.records import NO_FOLD

    if test_fold is None and same_root and NO_FOLD in (seen or []) and NO_FOLD in (present or []):
        log.warning("scoring every record of the root %s trained on, records without a strat_fold "
                    "among them: these figures are optimistic, not a test", checkpoint)  # fmt: skip

    if seen is not None:  # records without a strat_fold (NO_FOLD): no fold to tell a test by
        trained = set(seen) - {NO_FOLD}
        how = f"strat_folds {', '.join(map(str, sorted(trained)))}"
    elif config.get("protocol") == "benchmark":
        trained = set(config.get("train_folds") or [])
        how = f"strat_folds {', '.join(map(str, sorted(trained)))}"
    elif config.get("protocol") == "cv":
        holdout = config.get("holdout_fold")
        trained = set(range(1, 11)) - {holdout}
        how = "cross-validation over every strat_fold" + (f" but {holdout}" if holdout else "")
    else:
        return
    if test_fold is None and present is not None:
        both = sorted(trained & set(present))
        if both:
            log.warning("scoring every record, including strat_folds %s that %s trained on (%s): "
                        "pass --test-fold for a fair test", ", ".join(map(str, both)), checkpoint,
                        how)  # fmt: skip
    elif test_fold is None and trained:
        log.warning("scoring every record, including those %s trained on (%s): pass --test-fold "
                    "for a fair test", checkpoint, how)  # fmt: skip
    elif test_fold in trained:
        log.warning("strat_fold %d was in this checkpoint's training data (%s): these figures are "
                    "optimistic, not a test", test_fold, how)  # fmt: skip


def evaluate_checkpoint(
    checkpoint: str | Path,
    data_root: str | Path,
    out: str | Path,
    test_fold: int | None = None,
    threshold: float | None = None,
    cache_dir: str | Path | None = None,
    skip_missing: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Score a checkpoint on a PTB-XL root (one strat_fold, or every record), matching labels by name."""
    from ecgcnn.cache import load_signals, load_some_signals, rate_to_read
    from ecgcnn.checkpoint import load_checkpoint, model_from_checkpoint
    from ecgcnn.labels import make_labels
    from ecgcnn.recording import ResampledRecords, checkpoint_baseline
    from ecgcnn.records import load_database, require_strat_folds

    payload = load_checkpoint(checkpoint)
    model = model_from_checkpoint(payload, str(checkpoint))
    classes = list(payload["classes"])
    db = load_database(data_root)
    labels = make_labels(db, payload["task"], tuple(classes))
    if test_fold is not None:  # before reading any record: a full cache build is minutes
        require_strat_folds(db, db.records.index.to_numpy(), "--test-fold")
        present = sorted(set(db.records["strat_fold"].tolist()))
        if test_fold not in present:
            raise EcgcnnError(
                f"strat_fold {test_fold} holds no records in {data_root}; it has {present}"
            )
        if test_fold not in db.records.loc[labels.ecg_ids, "strat_fold"].to_numpy():
            raise EcgcnnError(
                f"no record of strat_fold {test_fold} in {data_root} has a label of task "
                f"{payload['task']!r} ({', '.join(classes)})"
            )
    scored = db.records.loc[labels.ecg_ids, "strat_fold"]  # the folds of the records it can score
    trained_root = (payload.get("config") or {}).get("data_root")
    same_root = (
        trained_root is not None and Path(trained_root).resolve() == Path(data_root).resolve()
    )
    warn_if_trained_on(payload.get("config") or {}, test_fold, checkpoint,
                       payload.get("strat_folds_seen"), scored.unique().tolist(), same_root)  # fmt: skip
    fs = payload["fs"]
    read_fs = rate_to_read(db, fs)  # PTB-XL's other rate, to be resampled, where it lacks this one
    baseline = checkpoint_baseline(payload)  # records treated as the model's were in training
    if test_fold is None:
        signals = load_signals(db, read_fs, cache_dir, skip_missing, progress, baseline)
    else:  # the fold's records alone need to be there and readable
        fold = labels.ecg_ids[db.records.loc[labels.ecg_ids, "strat_fold"].to_numpy() == test_fold]
        signals = load_some_signals(db, fold, read_fs, cache_dir, skip_missing, progress,
                                    baseline)  # fmt: skip
    ids = labels.ecg_ids[np.isin(labels.ecg_ids, signals.ecg_ids)]
    if test_fold is not None:
        ids = ids[db.records.loc[ids, "strat_fold"].to_numpy() == test_fold]
    y = labels.y[np.searchsorted(labels.ecg_ids, ids)]
    data = signals.data if read_fs == fs else ResampledRecords(signals.data, read_fs, fs)
    prob = predict_proba(model, data, signals.rows(ids), **checkpoint_windows(payload))
    split = f"fold{test_fold}" if test_fold is not None else "all"
    return write_evaluation(
        y, prob, ids, classes, stored_thresholds(payload, threshold), Path(out), split,
        {"checkpoint": str(checkpoint), "data_root": str(data_root),
         "thresholds": "override" if threshold is not None else "stored", "records_fs": read_fs},
    )  # fmt: skip
