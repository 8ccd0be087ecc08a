"""Timelines of long recordings (``ecgcnn predict --every``): for each recording, the probability of
its most telling classes part by part, their thresholds, the parts labelled, and the parts that could
not be scored, as one PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ecgcnn import atomic  # noqa: E402
from ecgcnn.errors import EcgcnnError  # noqa: E402
from ecgcnn.evaluate import safe_name  # noqa: E402
from ecgcnn.predict import BatchResult, Prediction  # noqa: E402
from ecgcnn.recording import FILE_SUFFIXES  # noqa: E402

FAILED_COLOUR = "0.75"


def plot_timelines(result: BatchResult, out: str | Path, most: int = 6) -> list[Path]:
    """One ``RECORD_timeline.png`` per recording of ``result`` (made with ``every``) in ``out``: the
    ``most`` classes labelled longest (then the most probable), each on its own row."""
    if result.every_s is None:
        raise EcgcnnError("a timeline needs --every (one prediction per part of a recording)")
    records: dict[str, list[Prediction]] = {}
    for p in result.predictions:
        records.setdefault(p.record, []).append(p)
    failed: dict[str, list[tuple[float, float]]] = {}
    for f in result.failures:
        if f.start_s is not None and f.end_s is not None:
            failed.setdefault(f.record, []).append((f.start_s, f.end_s))
            records.setdefault(f.record, [])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for record, parts in records.items():
        stem = safe_name(_stem(record))
        path = out / f"{stem}_timeline.png"
        k = 2
        while path in paths:  # two records of one name in different folders
            path, k = out / f"{stem}-{k}_timeline.png", k + 1
        _plot(record, parts, failed.get(record, []), result, path, most)
        paths.append(path)
    return paths


def _stem(record: str) -> str:
    name = Path(record).name
    return Path(name).stem if Path(name).suffix.lower() in FILE_SUFFIXES else name


def _plot(
    record: str,
    parts: Sequence[Prediction],
    failed: Sequence[tuple[float, float]],
    result: BatchResult,
    path: Path,
    most: int,
) -> None:
    classes, thresholds = result.classes, result.thresholds
    starts = np.array([p.start_s or 0.0 for p in parts])
    ends = np.array([p.end_s if p.end_s is not None else (p.start_s or 0.0) + p.duration_s
                     for p in parts])  # fmt: skip
    prob = np.array([[p.probabilities[c] for c in classes] for p in parts]).reshape(
        -1, len(classes)
    )
    labelled = (prob >= np.asarray(thresholds)).astype(float)
    share = (labelled * (ends - starts)[:, None]).sum(axis=0)
    order = np.lexsort((-prob.max(axis=0, initial=0.0), -share))[:most]
    end = max([*ends, *(b for _, b in failed), 1e-9])
    scale, unit = (3600, "h") if end > 7200 else (60, "min") if end > 120 else (1, "s")

    fig, axes = plt.subplots(len(order), 1, sharex=True, squeeze=False,
                             figsize=(13, 0.6 + 1.05 * len(order)), dpi=100)  # fmt: skip
    for ax, j in zip(axes[:, 0], order, strict=True):
        colour = f"C{int(j) % 10}"
        if len(parts):
            x = np.append(starts, ends[-1]) / scale
            y = np.append(prob[:, j], prob[-1, j])
            ax.step(x, y, where="post", color=colour, lw=1.0)
            on = labelled[:, j] > 0
            spans = list(zip(starts[on] / scale, (ends[on] - starts[on]) / scale, strict=True))
            ax.broken_barh(spans, (0, 1), color=colour, alpha=0.22, lw=0)
        ax.axhline(thresholds[j], color=colour, ls="--", lw=0.8)
        for a, b in failed:
            ax.axvspan(a / scale, b / scale, color=FAILED_COLOUR, alpha=0.6, lw=0)
        ax.set_ylim(0, 1)
        ax.set_yticks([0, 1])
        hours = share[j] / 3600
        time = f"{hours:.1f} h" if hours >= 1 else f"{share[j] / 60:.0f} min" if share[j] >= 60 else f"{share[j]:.0f} s"  # fmt: skip
        ax.set_ylabel(f"{classes[j]}\n{time}", rotation=0, ha="right", va="center", fontsize=9)
        ax.grid(axis="x", color="0.9", lw=0.6)
    axes[-1, 0].set_xlabel(f"time ({unit}); shaded: labelled (at or above the dashed threshold)"
                           + ("; grey: not scored" if failed else ""))  # fmt: skip
    axes[-1, 0].set_xlim(0, end / scale)
    model = result.model
    title = (f"{record}: {len(parts)} part(s) of {result.every_s:g} s"
             + (f", {len(failed)} not scored" if failed else "")
             + f"; {model.get('name')} ({model.get('task')})")  # fmt: skip
    if len(classes) > len(order):
        title += f"; {len(order)} of {len(classes)} classes shown"
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    try:
        atomic.write_with(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)
