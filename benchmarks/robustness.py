"""How a checkpoint's macro ROC-AUC on one PTB-XL strat_fold changes when each record carries what
device exports often do and PTB-XL's records do not: a constant offset on each lead, or a slow
baseline drift; scored with each ``--baseline`` treatment of ``ecgcnn predict``.

    python benchmarks/robustness.py --data-root ../shared/ptbxl-dev --fold 8 \\
        --checkpoint runs/bench-bs32/seed1/superdiagnostic/fcn_wang/benchmark/checkpoint.pt \\
        --out benchmarks/results/robustness.json

Every record goes through ``Predictor.predict`` (as ``ecgcnn predict`` scores an array), so the
figures are what a user of the command would get. The perturbations are drawn from a fixed seed.
Prints a markdown table of macro ROC-AUC and macro F1 (labels from the stored thresholds); ``--out`` also writes the figures as JSON. ``--records N`` scores only the
first N records of the fold (a quick check).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from ecgcnn import Predictor
from ecgcnn.cache import load_signals
from ecgcnn.labels import make_labels
from ecgcnn.metrics import compute_metrics
from ecgcnn.recording import BASELINES
from ecgcnn.records import load_database


def offsets(mv: float):
    """Each lead shifted by its own constant, uniform in [-mv, mv]."""

    def add(x: np.ndarray, fs: float, rng: np.random.Generator) -> np.ndarray:
        return x + rng.uniform(-mv, mv, size=(1, x.shape[1]))

    return add


def drift(mv: float):
    """Each lead plus a sinusoid of 0.05-0.3 Hz (breathing, movement) of amplitude ``mv``."""

    def add(x: np.ndarray, fs: float, rng: np.random.Generator) -> np.ndarray:
        t = np.arange(len(x))[:, None] / fs
        f = rng.uniform(0.05, 0.3, size=(1, x.shape[1]))
        phase = rng.uniform(0, 2 * np.pi, size=(1, x.shape[1]))
        return x + mv * np.sin(2 * np.pi * f * t + phase)

    return add


PERTURBATIONS = {
    "as recorded": None,
    "offsets up to 0.5 mV": offsets(0.5),
    "offsets up to 1 mV": offsets(1.0),
    "offsets up to 2 mV": offsets(2.0),
    "drift of 0.5 mV": drift(0.5),
    "drift of 1 mV": drift(1.0),
}


def score(predictor: Predictor, x: np.ndarray, fs: float, baseline: str) -> np.ndarray:
    """(records, classes) probabilities of (records, leads, samples) millivolts."""
    return np.array([list(predictor.predict(r.T, fs, baseline=baseline).probabilities.values())
                     for r in x])  # fmt: skip


def _auc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--checkpoint", action="append", required=True)
    ap.add_argument("--fold", type=int, default=8, help="strat_fold to score (default 8)")
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    db = load_database(args.data_root)
    rows = []
    for checkpoint in args.checkpoint:
        predictor = Predictor.load(checkpoint)
        labels = make_labels(db, predictor.meta["task"], tuple(predictor.classes))
        fold = db.records.loc[labels.ecg_ids, "strat_fold"].to_numpy() == args.fold
        if not fold.any():
            print(f"error: strat_fold {args.fold} holds no labelled records", file=sys.stderr)
            return 1
        ids, y = labels.ecg_ids[fold][: args.records], labels.y[fold][: args.records]
        signals = load_signals(db, int(predictor.fs), progress=False)
        clean = signals.data[signals.rows(ids)].astype(np.float64)
        name = (predictor.meta.get("model") or {}).get("name") or Path(checkpoint).parent.name
        for label, perturb in PERTURBATIONS.items():
            rng = np.random.default_rng(args.seed)
            x = clean if perturb is None else np.stack(
                [perturb(r.T, predictor.fs, rng).T for r in clean]
            )  # fmt: skip
            row = {"checkpoint": str(checkpoint), "model": name, "perturbation": label}
            for baseline in BASELINES:
                start = time.perf_counter()
                prob = score(predictor, x.astype(np.float32), predictor.fs, baseline)
                metrics = compute_metrics(
                    y, prob, predictor.classes, predictor.thresholds, warn=False
                )
                auc = metrics["roc_auc_macro"]  # None when no class has positives and negatives
                row[baseline] = None if auc is None else round(float(auc), 4)
                row[f"{baseline}_f1"] = round(float(metrics["f1_macro"]), 4)  # stored thresholds
                row[f"{baseline}_s"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            print(f"{name} | {label} | " + " | ".join(_auc(row[b]) for b in BASELINES),
                  file=sys.stderr)  # fmt: skip
    print(f"| model | records of strat_fold {args.fold} | "
          + " | ".join(f"--baseline {b}: ROC-AUC, F1" for b in BASELINES) + " |")  # fmt: skip
    print("|---" * (2 + len(BASELINES)) + "|")
    for row in rows:
        print(f"| {row['model']} | {row['perturbation']} | "
              + " | ".join(f"{_auc(row[b])}, {row[b + '_f1']:.3f}" for b in BASELINES) + " |")  # fmt: skip
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "command": "python benchmarks/robustness.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
            "fold": args.fold, "records": int(len(ids)), "seed": args.seed, "rows": rows,
        }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
