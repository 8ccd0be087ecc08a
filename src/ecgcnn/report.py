"""One self-contained HTML report per run: every image embedded, opens offline, rebuilt from saved files.

Sections: configuration; metrics per fold with mean +- std; per-class table; ROC and
precision-recall curves; confusion matrices; calibration; training curves; explained examples
(a true positive, a false positive and a false negative per class, on ECG paper). Everything
comes from the run folder (config.json, cv_results.json, each fold's metrics, predictions and
history); only the explained examples need the ECGs, read through the run's data root, and the
report says so in that section when the root is gone.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from ecgcnn import __version__, atomic  # noqa: E402
from ecgcnn.errors import EcgcnnError  # noqa: E402
from ecgcnn.metrics import summarize  # noqa: E402
from ecgcnn.models import model_label  # noqa: E402
from ecgcnn.paper import figure_png  # noqa: E402
from ecgcnn.saved import read_json, read_predictions  # noqa: E402

log = logging.getLogger(__name__)

SECTIONS: tuple[tuple[str, str], ...] = (
    ("config", "Configuration"),
    ("metrics", "Metrics per fold"),
    ("classes", "Per class"),
    ("curves", "ROC and precision-recall curves"),
    ("confusion", "Confusion matrices"),
    ("calibration", "Calibration"),
    ("training", "Training curves"),
    ("examples", "Explained examples"),
)
MAX_PLOTTED_CLASSES = 12  # curves, matrices and calibration: the most frequent classes
MAX_EXAMPLE_CLASSES = 5
FOLD_COLOURS = plt.get_cmap("tab10").colors
DPI = 100
EXAMPLE_DPI = 90
SCALARS = (
    ("records", "records"),
    ("pr_auc_macro", "PR-AUC"),
    ("roc_auc_macro", "ROC-AUC"),
    ("f1_macro", "F1 macro"),
    ("f1_micro", "F1 micro"),
    ("precision_macro", "precision"),
    ("recall_macro", "recall"),
)


@dataclass
class Fold:
    """What one trained fold left on disk."""

    name: str
    path: Path
    metrics: dict[str, Any]
    y_true: np.ndarray
    y_prob: np.ndarray
    ecg_ids: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    test_metrics: dict[str, Any] | None = None

    @property
    def thresholds(self) -> np.ndarray:
        return np.array([c["threshold"] for c in self.metrics["per_class"].values()])


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    classes: list[str]
    folds: list[Fold]
    missing: list[str]  # not trained yet
    results: dict[str, Any] | None
    unfinished: list[str] = field(default_factory=list)  # a history, but no metrics: interrupted
    lost: dict[str, str] = field(default_factory=dict)  # in cv_results.json; file missing


def _read_predictions(path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = read_predictions(path, n_classes)
    return p["y_true"], p["y_prob"], p["ecg_ids"]


def load_run(run_dir: str | Path) -> Run:
    """The saved files of a run; folds not trained yet are listed in ``missing``."""
    run = Path(run_dir)
    config_path = run / "config.json"
    if not run.is_dir():
        raise EcgcnnError(f"{run}: no such folder")
    if not config_path.is_file():
        raise EcgcnnError(f"{run} is not a run folder (no config.json)")
    config = _object(read_json(config_path), config_path)
    for key in ("classes", "fold_names"):
        if not isinstance(config.get(key), list):
            raise EcgcnnError(f"{config_path}: missing {key!r}; was it written by ecgcnn train?")
    results_path = run / "cv_results.json"
    results = _object(read_json(results_path), results_path) if results_path.is_file() else None
    summarised = set((results or {}).get("folds") or ())
    folds, missing, unfinished, lost = [], [], [], {}
    for name in config["fold_names"]:
        d = run / name
        absent = [f for f in ("metrics.json", "predictions_val.npz") if not (d / f).is_file()]
        if absent:
            if name in summarised:
                lost[name] = absent[0]
            elif (d / "history.json").is_file() or (d / "checkpoint.pt").is_file():
                unfinished.append(name)
            else:
                missing.append(name)
            continue
        y_true, y_prob, ids = _read_predictions(d / "predictions_val.npz", len(config["classes"]))
        history = read_json(d / "history.json") if (d / "history.json").is_file() else []
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise EcgcnnError(f"{d / 'history.json'}: expected a list of epochs (JSON objects)")
        test = None
        if (d / "metrics_test.json").is_file():
            test = _metrics(read_json(d / "metrics_test.json"), d / "metrics_test.json")
        metrics = _metrics(read_json(d / "metrics.json"), d / "metrics.json")
        folds.append(Fold(name, d, metrics, y_true, y_prob, ids, history, test))
    if not folds:
        raise EcgcnnError(f"{run}: no fold trained yet (no metrics.json with predictions_val.npz)")
    return Run(run, config, list(config["classes"]), folds, missing, results, unfinished, lost)


def _object(value: Any, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EcgcnnError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def _metrics(value: Any, path: Path) -> dict[str, Any]:
    """A saved metrics file, checked for what the report reads (a hand-edited one gets a line)."""
    metrics = _object(value, path)
    per_class = metrics.get("per_class")
    if not isinstance(per_class, dict):
        raise EcgcnnError(f"{path}: no 'per_class' object; was it written by ecgcnn train?")
    for name, c in per_class.items():
        if not isinstance(c, dict) or not isinstance(c.get("threshold"), (int, float)):
            raise EcgcnnError(f"{path}: class {name!r} has no numeric 'threshold'")
    return metrics


# --- formatting ----------------------------------------------------------------------------------


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _mean_std(values: list[float | None]) -> str:
    defined = [v for v in values if v is not None]
    if not defined:
        return "n/a"
    if len(defined) == 1:
        return _num(defined[0])
    return f"{np.mean(defined):.3f} ± {np.std(defined):.3f}"


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """An HTML table; cells are already escaped."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    table = f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="scroll">{table}</div>'  # a wide table scrolls in place on a phone


def _img(png: bytes, alt: str, cls: str = "") -> str:
    """An inline PNG; a ``wide`` one (many panels) keeps a legible width on a phone, scrolled."""
    data = base64.b64encode(png).decode("ascii")
    img = f'<img class="{cls}" alt="{_esc(alt)}" src="data:image/png;base64,{data}">'
    return f'<div class="scroll">{img}</div>' if cls == "wide" else img


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _plotted_classes(run: Run) -> list[int]:
    support = sum(f.y_true.sum(axis=0) for f in run.folds)
    order = np.argsort(-support, kind="stable")
    return [int(j) for j in order[:MAX_PLOTTED_CLASSES]]


def _more_classes_note(run: Run, shown: list[int]) -> str:
    if len(shown) == len(run.classes):
        return ""
    return _note(f"Showing the {len(shown)} most frequent of {len(run.classes)} classes.")


def _grid(n: int, max_cols: int = 5) -> tuple[int, int]:
    cols = min(max_cols, max(1, n))
    return math.ceil(n / cols), cols


def _style(ax: plt.Axes) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=7.5)
    ax.grid(alpha=0.25, lw=0.5)


# --- sections ------------------------------------------------------------------------------------


# settings that the other protocol reads: shown, they would describe a split the run did not use
UNUSED_BY_PROTOCOL = {
    "benchmark": ("folds", "holdout_fold"),
    "cv": ("train_folds", "val_fold", "test_fold"),
}


def section_config(run: Run) -> str:
    rows = []
    unused = UNUSED_BY_PROTOCOL.get(str(run.config.get("protocol")), ())
    for key, value in run.config.items():
        if key in unused or key == "only_fold":  # which process wrote config.json last
            continue
        if isinstance(value, dict):
            rows += [[_esc(f"{key}.{k}"), _esc(_plain(v))] for k, v in value.items()]
        else:
            rows.append([_esc(key), _esc(_plain(value))])
    half = math.ceil(len(rows) / 2)  # two tables side by side: the page stays short
    return (
        '<div class="columns">'
        + _table(["setting", "value"], rows[:half], "config")
        + _table(["setting", "value"], rows[half:], "config")
        + "</div>"
    )


def _plain(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def section_metrics(run: Run) -> str:
    header = ["fold", "split", "epoch", *(label for _, label in SCALARS)]
    rows, val, test = [], [], []
    for f in run.folds:
        rows.append(_metric_row(f.name, "validation", f.metrics.get("epoch"), f.metrics))
        val.append(f.metrics)
        if f.test_metrics is not None:
            test.append(f.test_metrics)
            split = "holdout" if run.config.get("protocol") == "cv" else "test"
            rows.append(_metric_row(f.name, split, f.test_metrics.get("epoch"), f.test_metrics))
    holdout = run.config.get("protocol") == "cv"  # every fold scores the same holdout records
    for label, group in (("validation", val), ("holdout" if holdout else "test", test)):
        if len(group) > 1:
            ms = summarize(group)
            counts = [int(m.get("records") or 0) for m in group]
            records = max(counts) if label == "holdout" else sum(counts)
            rows.append(
                ["<b>mean ± std</b>", label, "", str(records),
                 *(_esc(_fmt_ms(ms[k])) for k, _ in SCALARS[1:])]
            )  # fmt: skip
    if run.results:
        for part in ("holdout", "test"):
            ens = run.results.get(part, {}).get("ensemble")
            if ens:
                rows.append(_metric_row(f"ensemble of {ens.get('models', '')}", part, None, ens))
    out = _table(header, rows, "metrics")
    for name, absent in run.lost.items():
        out += _note(
            f"{_esc(name)} is in cv_results.json, but its {_esc(absent)} is missing: the figures "
            "here leave it out, so they differ from cv_results.json's."
        )
    if run.unfinished:
        out += _note(
            f"Unfinished (still training, or interrupted): {_esc(', '.join(run.unfinished))}."
        )
    if run.missing:
        out += _note(f"Not trained yet: {_esc(', '.join(run.missing))}.")
    if run.config.get("protocol") == "cv":
        chosen = (
            "the best epoch and the thresholds were"
            if (run.config.get("recipe") or {}).get("select_best", True)
            else "the thresholds were"  # the last epoch kept
        )
        out += _note(
            f"Validation figures are optimistic: {chosen} chosen on the same fold. Holdout and "
            "test figures are not."
        )
    return out


def _fmt_ms(ms: dict[str, Any]) -> str:
    if ms.get("mean") is None:
        return "n/a"
    if ms.get("n", 2) < 2:
        return f"{ms['mean']:.3f}"
    return f"{ms['mean']:.3f} ± {ms['std']:.3f}"


def _metric_row(name: str, split: str, epoch: object, m: dict[str, Any]) -> list[str]:
    cells = [str(m.get("records", ""))] + [_num(m.get(k)) for k, _ in SCALARS[1:]]
    return [_esc(name), _esc(split), _esc(epoch if epoch is not None else "")] + cells


def section_classes(run: Run) -> str:
    out = _class_table(run, [f.metrics for f in run.folds], "validation")
    tests = [f.test_metrics for f in run.folds if f.test_metrics is not None]
    if tests:
        holdout = run.config.get("protocol") == "cv"
        out += f"<h3>{'Holdout' if holdout else 'Test'}</h3>" + _class_table(
            run, tests, "holdout" if holdout else "test"
        )
    return out


def _class_table(run: Run, metrics: list[dict[str, Any]], split: str) -> str:
    rows = []
    for name in run.classes:
        per = [m["per_class"].get(name, {}) for m in metrics]
        supports = [int(p.get("support", 0)) for p in per]
        support = max(supports, default=0) if split == "holdout" else sum(supports)
        thresholds = [p["threshold"] for p in per if "threshold" in p]
        rows.append(
            [_esc(name), str(support),
             *(_esc(_mean_std([p.get(k) for p in per])) for k in ("roc_auc", "pr_auc", "f1")),
             _esc(" / ".join(f"{t:.2f}" for t in thresholds))]
        )  # fmt: skip
    header = [
        "class",
        "support (holdout, the same records for every fold)"
        if split == "holdout"
        else f"support ({split}, all folds)",
        "ROC-AUC",
        "PR-AUC",
        "F1",
        "threshold per fold",
    ]
    return _table(header, rows, "classes")


def plot_curves(run: Run, shown: list[int]) -> tuple[bytes, bytes]:
    """ROC and precision-recall curves, a panel per class, a line per fold."""
    pngs = []
    for kind in ("roc", "pr"):
        nrows, ncols = _grid(len(shown))
        fig, axes = plt.subplots(nrows, ncols, figsize=(2.7 * ncols, 2.6 * nrows + 0.3),
                                 squeeze=False, sharex=True, sharey=True)  # fmt: skip
        for ax, j in zip(axes.flat, shown, strict=False):
            for k, f in enumerate(run.folds):
                t, p = f.y_true[:, j].astype(int), f.y_prob[:, j]
                if not 0 < t.sum() < len(t):
                    continue
                colour = FOLD_COLOURS[k % len(FOLD_COLOURS)]
                if kind == "roc":
                    fpr, tpr, _ = roc_curve(t, p)
                    auc = f.metrics["per_class"][run.classes[j]].get("roc_auc")
                    ax.plot(fpr, tpr, color=colour, lw=1.2, label=f"{f.name} {_num(auc, 2)}")
                else:
                    prec, rec, _ = precision_recall_curve(t, p)
                    auc = f.metrics["per_class"][run.classes[j]].get("pr_auc")
                    ax.step(rec, prec, where="post", color=colour, lw=1.2,
                            label=f"{f.name} {_num(auc, 2)}")  # fmt: skip
            if kind == "roc":
                ax.plot([0, 1], [0, 1], color="#bbbbbb", lw=0.8, ls="--")
            else:
                prevalence = np.mean(np.concatenate([f.y_true[:, j] for f in run.folds]))
                ax.axhline(prevalence, color="#bbbbbb", lw=0.8, ls="--")
            ax.set_title(run.classes[j], fontsize=10, fontweight="bold")
            ax.set_xlim(-0.02, 1.02)
            ax.set_ylim(-0.02, 1.02)
            if ax.get_legend_handles_labels()[0]:  # no line where no fold has both labels
                ax.legend(fontsize=6.5, loc="lower right" if kind == "roc" else "lower left",
                          title="AUC", title_fontsize=6.5, frameon=False)  # fmt: skip
            _style(ax)
        for ax in list(axes.flat)[len(shown) :]:
            ax.set_visible(False)
        xlabel, ylabel = ("false positive rate", "true positive rate") if kind == "roc" else (
            "recall", "precision")  # fmt: skip
        fig.supxlabel(xlabel, fontsize=9)
        fig.supylabel(ylabel, fontsize=9)
        fig.tight_layout()
        pngs.append(figure_png(fig, DPI))
    return pngs[0], pngs[1]


def section_curves(run: Run, shown: list[int]) -> str:
    roc, pr = plot_curves(run, shown)
    return (
        _more_classes_note(run, shown)
        + "<h3>ROC</h3>"
        + _img(roc, "ROC curves per class", "wide")
        + _note("Dashed: chance. Legend: each fold's validation AUC.")
        + "<h3>Precision-recall</h3>"
        + _img(pr, "precision-recall curves per class", "wide")
        + _note("Dashed: the class's prevalence (a classifier without skill).")
    )


def plot_confusion(run: Run, shown: list[int]) -> bytes:
    """2 x 2 matrices per class, summed over folds, each fold at its own stored threshold."""
    nrows, ncols = _grid(len(shown), 6)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.25 * ncols, 2.3 * nrows), squeeze=False)
    for ax, j in zip(axes.flat, shown, strict=False):
        cm = np.zeros((2, 2), dtype=int)
        for f in run.folds:
            t = f.y_true[:, j].astype(int)
            pred = (f.y_prob[:, j] >= f.thresholds[j]).astype(int)
            for a in (0, 1):
                for b in (0, 1):
                    cm[a, b] += int(((t == a) & (pred == b)).sum())
        rate = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(rate, cmap="Blues", vmin=0, vmax=1)
        for a in (0, 1):
            for b in (0, 1):
                colour = "white" if rate[a, b] > 0.6 else "#1a1a1a"
                ax.text(b, a, f"{cm[a, b]}\n{rate[a, b]:.0%}", ha="center", va="center",
                        fontsize=9, color=colour)  # fmt: skip
        ax.set_xticks([0, 1], ["absent", "present"], fontsize=7.5)
        ax.set_yticks([0, 1], ["absent", "present"], fontsize=7.5, rotation=90, va="center")
        ax.set_title(run.classes[j], fontsize=10, fontweight="bold")
    for ax in list(axes.flat)[len(shown) :]:
        ax.set_visible(False)
    fig.supxlabel("predicted", fontsize=9)
    fig.supylabel("true", fontsize=9)
    fig.tight_layout()
    return figure_png(fig, DPI)


def section_confusion(run: Run, shown: list[int]) -> str:
    return (
        _more_classes_note(run, shown)
        + _img(plot_confusion(run, shown), "confusion matrices per class", "wide")
        + _note("Validation records of every fold; counts and the share of each true row.")
    )


def plot_calibration(run: Run, shown: list[int], bins: int = 10) -> tuple[bytes, list[list[str]]]:
    """Reliability diagram (pooled validation predictions) and the distribution of probabilities."""
    y = np.concatenate([f.y_true for f in run.folds])
    p = np.concatenate([f.y_prob for f in run.folds])
    fig, (ax, hx) = plt.subplots(1, 2, figsize=(10.5, 4.2), gridspec_kw={"width_ratios": [1.15, 1]})
    ax.plot([0, 1], [0, 1], color="#999999", ls="--", lw=0.9, label="perfectly calibrated")
    edges = np.linspace(0, 1, bins + 1)
    colours = plt.get_cmap("tab10" if len(shown) <= 10 else "tab20").colors
    rows = []
    for k, j in enumerate(shown):
        which = np.clip(np.digitize(p[:, j], edges[1:-1]), 0, bins - 1)
        count = np.bincount(which, minlength=bins)
        mean_p = np.bincount(which, p[:, j], bins) / np.maximum(count, 1)
        frac = np.bincount(which, y[:, j], bins) / np.maximum(count, 1)
        ok = count > 0
        ece = float(np.sum(count[ok] * np.abs(frac[ok] - mean_p[ok])) / len(p))
        brier = float(np.mean((p[:, j] - y[:, j]) ** 2))
        colour = colours[k % len(colours)]
        ax.plot(mean_p[ok], frac[ok], marker="o", ms=3.5, lw=1.3, color=colour,
                label=f"{run.classes[j]} (ECE {ece:.2f})")  # fmt: skip
        hx.hist(p[:, j], bins=edges, histtype="step", lw=1.3, color=colour, label=run.classes[j])
        rows.append([_esc(run.classes[j]), f"{ece:.3f}", f"{brier:.3f}"])
    ax.set_xlabel("predicted probability (bin mean)", fontsize=9)
    ax.set_ylabel("observed frequency", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("reliability", fontsize=10, loc="left")
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    hx.set_yscale("log")
    hx.set_xlabel("predicted probability", fontsize=9)
    hx.set_ylabel("records", fontsize=9)
    hx.set_title("distribution of predictions", fontsize=10, loc="left")
    for a in (ax, hx):
        _style(a)
    fig.tight_layout()
    return figure_png(fig, DPI), rows


def section_calibration(run: Run, shown: list[int]) -> str:
    png, rows = plot_calibration(run, shown)
    return (
        _more_classes_note(run, shown)
        + _img(png, "reliability diagram", "wide")
        + _table(["class", "expected calibration error", "Brier score"], rows, "narrow")
        + _note(
            "Pooled validation predictions of every fold in ten equal-width bins. "
            + (
                "Class-weighted training pushes probabilities up, so points below the diagonal "
                "are expected."
                if (run.config.get("recipe") or {}).get("class_weighted", True)
                else "The loss was not class-weighted, so points far from the diagonal are the "
                "model's own miscalibration."
            )
        )
    )


def training_curves(fold: Fold) -> list[tuple[str, list[dict[str, Any]], int | None]]:
    """(label, history rows, epoch kept) per network of a fold: one, or each member of an ensemble."""
    members = sorted({h["member"] for h in fold.history if "member" in h})
    if not members:
        return [(fold.name, fold.history, fold.metrics.get("epoch"))]
    kept = fold.metrics.get("member_epochs") or []
    return [
        (f"{fold.name} member {k}", [h for h in fold.history if h.get("member") == k],
         kept[k] if k < len(kept) else None)
        for k in members
    ]  # fmt: skip


def plot_training(run: Run) -> bytes | None:
    curves = [c for f in run.folds if f.history for c in training_curves(f)]
    if not curves:
        return None
    fig, (lx, mx) = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, (name, history, best) in enumerate(curves):
        colour = FOLD_COLOURS[k % len(FOLD_COLOURS)]
        ep = [h["epoch"] for h in history]
        dots = {"marker": "o", "ms": 3.5}  # a single epoch is a point, which a line would not show
        lx.plot(ep, [_nan(h.get("train_loss")) for h in history], color=colour, lw=1.4,
                label=f"{name} train", **dots)  # fmt: skip
        lx.plot(ep, [_nan(h.get("val_loss")) for h in history], color=colour, lw=1.4, ls="--",
                label=f"{name} validation", **dots)  # fmt: skip
        pr = [_nan(h.get("val_pr_auc_macro")) for h in history]
        roc = [_nan(h.get("val_roc_auc_macro")) for h in history]
        mx.plot(ep, pr, color=colour, lw=1.4, label=f"{name} PR-AUC", **dots)
        mx.plot(ep, roc, color=colour, lw=1.0, ls=":", label=f"{name} ROC-AUC", **dots)
        if best in ep:
            i = ep.index(best)
            mx.plot([best], [pr[i]], marker="*", ms=11, color=colour, mec="white", zorder=5)
    lx.set_title("loss", fontsize=10, loc="left")
    mx.set_title("validation (macro); ★ the epoch kept", fontsize=10, loc="left")
    for a in (lx, mx):
        a.set_xlabel("epoch", fontsize=9)
        a.xaxis.get_major_locator().set_params(integer=True)
        a.legend(fontsize=7, frameon=False, ncol=2 if len(curves) > 2 else 1)
        _style(a)
    fig.tight_layout()
    return figure_png(fig, DPI)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def section_training(run: Run) -> str:
    png = plot_training(run)
    if png is None:
        return _note("No history.json in any fold.")
    weighted = (run.config.get("recipe") or {}).get("class_weighted", True)
    return _img(png, "training curves", "wide") + _note(
        "Solid: training loss; dashed: validation loss (the training loss, "
        + ("class weights included)." if weighted else "unweighted, as trained).")
    )


# --- explained examples --------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    class_index: int
    kind: str  # "true positive", "false positive", "false negative"
    row: int  # in the fold's validation predictions


def choose_examples(fold: Fold, class_indices: list[int]) -> list[Example]:
    """Per class: the most confident true positive and false positive, and the most missed positive."""
    chosen = []
    for j in class_indices:
        t = fold.y_true[:, j].astype(bool)
        p = fold.y_prob[:, j]
        pred = p >= fold.thresholds[j]
        for kind, mask, pick in (
            ("true positive", t & pred, np.argmax),
            ("false positive", ~t & pred, np.argmax),
            ("false negative", t & ~pred, np.argmin),
        ):
            rows = np.flatnonzero(mask)
            if len(rows):
                chosen.append(Example(j, kind, int(rows[pick(p[rows])])))
    return chosen


def section_examples(
    run: Run, method: str, cache_dir: str | Path | None, max_classes: int = MAX_EXAMPLE_CLASSES,
    data_root: str | Path | None = None,
) -> str:  # fmt: skip
    from ecgcnn.cache import load_signals
    from ecgcnn.checkpoint import load_checkpoint, model_from_checkpoint
    from ecgcnn.evaluate import checkpoint_windows
    from ecgcnn.explain import explain_signal
    from ecgcnn.paper import paper_figure
    from ecgcnn.recording import checkpoint_baseline, remove_baseline_records
    from ecgcnn.records import load_database

    fold = next((f for f in run.folds if (f.path / "checkpoint.pt").is_file()), None)
    if fold is None:
        return _note("No fold has a checkpoint.pt, so there is nothing to explain.")
    root = Path(str(data_root or run.config.get("data_root", "")))
    if not (root / "ptbxl_database.csv").is_file():
        whose = "The data root given" if data_root else "The run's data root"
        log.warning("%s %s is not there (no ptbxl_database.csv): the report has no explained "
                    "ECGs; give the data's folder with --data-root", whose.lower()[4:], root)  # fmt: skip
        return _note(
            f"{whose} <code>{_esc(root)}</code> is no longer there, so the ECGs cannot be drawn. "
            "Rebuild the report with the data's folder: "
            "<code>ecgcnn report RUN_DIR --data-root DIR</code>."
        )
    try:
        payload = load_checkpoint(fold.path / "checkpoint.pt")
        model = model_from_checkpoint(payload, str(fold.path / "checkpoint.pt"))
    except EcgcnnError as exc:
        log.warning("no explained ECGs in the report: %s", exc)
        return _note(f"The model to explain could not be loaded: {_esc(exc)}")
    try:
        db = load_database(root)
        signals = load_signals(
            db, int(payload["fs"]), cache_dir or run.config.get("cache_dir"), skip_missing=True,
            progress=False,
        )  # fmt: skip
    except EcgcnnError as exc:
        log.warning("no explained ECGs in the report: %s", exc)
        return _note(f"The ECGs could not be read: {_esc(exc)}")
    plotted = _plotted_classes(run)
    no_positive = [run.classes[j] for j in plotted if not fold.y_true[:, j].any()]
    classes = [j for j in plotted if fold.y_true[:, j].any()][:max_classes]
    examples = choose_examples(fold, classes)
    parts = [
        _note(
            f"{_esc(fold.name)}'s model on its validation records, explained with "
            f"{_esc(method)}: the blue band is where the attribution is high (click an ECG to "
            "enlarge it). Attributions show what moves the model's output, not a clinical finding."
        )
    ]
    available = set(signals.ecg_ids.tolist())
    baseline = checkpoint_baseline(payload)
    for j in classes:
        items = [e for e in examples if e.class_index == j]
        parts.append(f'<h3>{_esc(run.classes[j])}</h3><div class="examples">')
        if not items:
            parts.append(_note("No validation record to show."))
        for e in items:
            ecg_id = int(fold.ecg_ids[e.row])
            if ecg_id not in available:
                parts.append(_note(f"{e.kind}: ecg_id {ecg_id} is not readable in {_esc(root)}."))
                continue
            signal = remove_baseline_records(  # as the model learnt its records
                signals.data[signals.rows(np.array([ecg_id]))], signals.fs, baseline
            )[0]
            ex = explain_signal(model, signal, j, method, **checkpoint_windows(payload))
            truth = [c for c, v in zip(run.classes, fold.y_true[e.row], strict=True) if v]
            fig = paper_figure(
                ex.signal, signals.fs, ex.attribution, leads=signals.leads,
                record=f"ecg_id {ecg_id}  ·  {e.kind}", class_name=run.classes[j],
                probability=ex.probability, truth=truth, method=method,
                threshold=float(fold.thresholds[j]),
            )  # fmt: skip
            parts.append(
                f'<figure><figcaption><span class="tag {e.kind.split()[0]}">{_esc(e.kind)}</span> '
                f"ecg_id {ecg_id}, p = {ex.probability:.3f}</figcaption>"
                # A checkbox and CSS zoom the image on click, without script or a second copy.
                + '<label class="zoom"><input type="checkbox">'
                + _img(
                    figure_png(fig, EXAMPLE_DPI, colours=128),
                    f"{run.classes[j]} {e.kind} ecg_id {ecg_id}",
                    "ecg",
                )
                + "</label></figure>"
            )
        parts.append("</div>")
    if len(classes) < len(run.classes):
        why = (
            f"; none of {_esc(fold.name)}'s validation records is a positive of "
            f"{_esc(', '.join(no_positive))}"
            if no_positive
            else ""
        )
        parts.insert(
            1, _note(f"The {len(classes)} most frequent of {len(run.classes)} classes{why}.")
        )
    return "".join(parts)


# --- the page ------------------------------------------------------------------------------------

CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #e3e6ec; --accent: #2a4bd7; --bg: #f5f6f9; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: var(--bg); }
header { background: #17203a; color: #fff; padding: 22px 32px 18px; }
header h1 { margin: 0 0 6px; font-size: 23px; font-weight: 650; }
header .sub { color: #b8c2dc; font-size: 14px; }
.badges { margin-top: 12px; display: flex; flex-wrap: wrap; gap: 8px; }
.badge { background: rgba(255,255,255,.1); border: 1px solid rgba(255,255,255,.18);
         border-radius: 6px; padding: 4px 10px; font-size: 13px; }
.badge b { color: #fff; }
nav { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line);
      padding: 8px 32px; display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
main { max-width: 1720px; margin: 0 auto; padding: 20px 32px 40px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px;
          padding: 18px 22px 20px; margin: 0 0 20px; }
h2 { margin: 0 0 12px; font-size: 19px; }
h3 { margin: 18px 0 8px; font-size: 16px; color: #333b4d; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 13.5px; margin: 4px 0 8px; }
th, td { padding: 5px 12px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: #f0f2f7; font-weight: 600; }
td:first-child, th:first-child { text-align: left; }
table.config td, table.config th { text-align: left; white-space: normal; }
table.config td:first-child { font-family: ui-monospace, Menlo, Consolas, monospace; color: var(--muted); }
tbody tr:nth-child(even) { background: #fafbfd; }
img { max-width: 100%; height: auto; display: block; margin: 6px 0; }
img.ecg { border: 1px solid var(--line); border-radius: 4px; }
figure { margin: 0; min-width: 0; }
.examples { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 14px 18px; }
@media (max-width: 1100px) { .examples { grid-template-columns: 1fr; } }
@media (max-width: 700px) {
  header, nav { padding-left: 14px; padding-right: 14px; }
  main { padding: 12px 8px 30px; } section { padding: 14px 12px; }
  .scroll img.wide { width: 700px; max-width: none; } /* many panels: legible, scrolled sideways */
}
.zoom input { display: none; }
.zoom img { cursor: zoom-in; }
.zoom input:checked + img { position: fixed; top: 0; left: 0; width: 100vw; height: 100vh;
  max-width: none; margin: 0; padding: 2vh 2vw; object-fit: contain; background: rgba(20,24,36,.92);
  border: 0; border-radius: 0; z-index: 10; cursor: zoom-out; }
.columns { display: flex; flex-wrap: wrap; gap: 0 28px; align-items: flex-start; }
figcaption { font-size: 14px; color: var(--muted); }
.note { color: var(--muted); font-size: 13.5px; margin: 6px 0; }
.tag { display: inline-block; border-radius: 4px; padding: 1px 8px; font-size: 12.5px;
       font-weight: 600; color: #fff; margin-right: 6px; }
.tag.true { background: #1c8a4a; } .tag.false { background: #c0392b; }
footer { color: var(--muted); font-size: 12.5px; text-align: center; padding: 0 0 30px; }
code { background: #f0f2f7; padding: 1px 5px; border-radius: 4px; }
"""


def render_report(
    run: Run, examples: bool = True, method: str = "integrated-gradients",
    cache_dir: str | Path | None = None, data_root: str | Path | None = None,
) -> str:  # fmt: skip
    """The report of a loaded run as one HTML string."""
    shown = _plotted_classes(run)
    bodies = {
        "config": section_config(run),
        "metrics": section_metrics(run),
        "classes": section_classes(run),
        "curves": section_curves(run, shown),
        "confusion": section_confusion(run, shown),
        "calibration": section_calibration(run, shown),
        "training": section_training(run),
        "examples": section_examples(run, method, cache_dir, data_root=data_root)
        if examples
        else _note("Left out (report written with --no-examples)."),
    }
    cfg = run.config
    ms = summarize([f.metrics for f in run.folds])
    badges = [
        ("model", _model_name(cfg)), ("task", cfg.get("task")),
        ("protocol", cfg.get("protocol")), ("folds", f"{len(run.folds)} of {len(cfg['fold_names'])}"),
        ("classes", len(run.classes)),
        ("validation PR-AUC", _fmt_ms(ms["pr_auc_macro"])),
        ("ROC-AUC", _fmt_ms(ms["roc_auc_macro"])),
    ]  # fmt: skip
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{sid}">{_esc(title)}</a>' for sid, title in SECTIONS)
    sections = "".join(
        f'<section id="{sid}"><h2>{_esc(title)}</h2>{bodies[sid]}</section>'
        for sid, title in SECTIONS
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ecgcnn report: {_esc(run.path.name)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>{_esc(run.path.name)}</h1>
<div class="sub">{_esc(_model_name(cfg))} on {_esc(cfg.get("task"))}, {_esc(", ".join(run.classes))}</div>
<div class="badges">{"".join(f'<span class="badge">{_esc(k)} <b>{_esc(v)}</b></span>' for k, v in badges)}</div>
</header>
<nav>{nav}</nav>
<main>{sections}</main>
<footer>Written by ecgcnn {_esc(__version__)} on {now} from <code>{_esc(run.path)}</code>.
ecgcnn is a research tool: nothing here is a diagnosis.</footer>
</body></html>
"""


def _model_name(config: dict[str, Any]) -> str:
    return model_label(
        str(config.get("model")), int((config.get("recipe") or {}).get("members", 1))
    )


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    examples: bool = True,
    method: str = "integrated-gradients",
    cache_dir: str | Path | None = None,
    data_root: str | Path | None = None,
) -> Path:
    """Write ``report.html`` (or ``out``) for a run folder, from its saved files; returns the path.
    ``data_root``: where the run's data is now, for the explained ECGs (default: the run's own)."""
    from ecgcnn.explain import check_method

    check_method(method)
    run = load_run(run_dir)
    path = Path(out) if out is not None else run.path / "report.html"
    problem = atomic.unwritable(path, False)
    if problem:
        raise EcgcnnError(f"{'--out ' if out is not None else ''}{path} {problem}")
    atomic.write_text(path, render_report(run, examples, method, cache_dir, data_root))
    log.debug("report: %s", path)
    return path
