"""Re-score finished benchmark-protocol runs with other test-time windows: max or mean, 1.25 s or 0.5 s,
or the whole 10 s record in one pass (the models pool globally, so they read any length).

    python benchmarks/window_aggregation.py runs/sweep/resnet1d_wang/base runs/sweep/resnet1d_wang/mix

Training with ``--keep-last`` does not depend on the aggregation (it only changes how a record's window
scores are combined), so one trained model answers "max or mean?" without retraining. Prints the
validation and test macro ROC-AUC of each setting; choose on the validation column.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ecgcnn import load_model
from ecgcnn.evaluate import predict_proba
from ecgcnn.metrics import compute_metrics
from ecgcnn.train import prepare, resume_config

SETTINGS = (("max", 1.25), ("mean", 1.25), ("max", 0.5), ("mean", 0.5), ("whole", None))


def main(runs: list[str]) -> int:
    if not runs or any(r.startswith("-") for r in runs):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    data, cfg0 = None, None
    prepared = {}  # baseline -> the split's records treated that way (runs may differ in it)
    heads = [f"{a} / {s} s" if s else "whole record" for a, s in SETTINGS]
    print("| run | " + " | ".join(f"{h} (val, test)" for h in heads) + " |")
    print("|---" * (len(SETTINGS) + 1) + "|")
    for run in map(Path, runs):
        cfg = resume_config(run, progress=False)
        if cfg.recipe.baseline not in prepared:
            prepared[cfg.recipe.baseline] = prepare(cfg)
        data, cfg0 = prepared[cfg.recipe.baseline], cfg0 or cfg
        split = data.splits[0]
        model = load_model(run / "benchmark" / "checkpoint.pt")
        window, fs = model.meta["window"], model.meta["fs"]
        if window is None:
            sys.exit(f"{run}: the model reads whole records; there are no windows to aggregate")
        same_split = (cfg.val_fold, cfg.test_fold) == (cfg0.val_fold, cfg0.test_fold)
        if tuple(model.meta["classes"]) != data.labels.classes or not same_split:
            sys.exit(f"{run}: another task or split than {runs[0]}; give runs of one benchmark")
        cells = []
        for how, stride_s in SETTINGS:
            auc = []
            for part in (split.val, split.test):
                if stride_s is None:  # one pass over the whole record
                    prob = predict_proba(model, data.signals.data, data.cache_rows[part])
                else:
                    prob = predict_proba(model, data.signals.data, data.cache_rows[part], window=window,
                                         stride=round(stride_s * fs), aggregate=how)  # fmt: skip
                m = compute_metrics(data.labels.y[part], prob, data.labels.classes, warn=False)
                auc.append(m["roc_auc_macro"])
            cells.append(f"{auc[0]:.4f}, {auc[1]:.4f}")
        print(f"| {run} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
