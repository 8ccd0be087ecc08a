"""Summarise leaderboards of the same benchmark run with several seeds: one number per seed, and the mean.

    python benchmarks/seed_summary.py --task superdiagnostic runs/bench-seeds/seed*-max

A single training run moves by about 0.005-0.01 macro ROC-AUC with its seed (initialisation, windows,
batch order); a difference between models is only worth reporting if it holds over seeds. Prints, per
model, the test macro ROC-AUC and the paired difference to the leaderboard's reference for each folder,
then their mean and standard deviation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from ecgcnn.benchmark import entry_label


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    ap.add_argument("--task", default="superdiagnostic")
    args = ap.parse_args(argv)
    boards = [json.loads((f / "leaderboard.json").read_text()) for f in args.folders]
    reference = boards[0]["reference"]
    for folder, board in zip(args.folders, boards, strict=True):
        if args.task not in board["tasks"] or board["reference"] != reference:
            ap.error(f"{folder}: no {args.task} results with reference {reference}")
    rows = [b["tasks"][args.task] for b in boards]
    models = [m for m in rows[0] if all(m in r for r in rows) and rows[0][m]["parameters"] > 0]
    # an ensemble and a single network, or networks trained on other records or with auxiliary
    # labels, are different models: the entry's label names each of these settings
    for m in models:
        labels = [entry_label(m, r[m]) for r in rows]
        other = next((i for i, k in enumerate(labels) if k != labels[0]), None)
        if other is not None:
            ap.error(
                f"{m} is {labels[0]} in {args.folders[0]} but {labels[other]} in "
                f"{args.folders[other]}: not one model to average"
            )
    print(
        f"{args.task}: test macro ROC-AUC per folder ({', '.join(f.name for f in args.folders)});"
    )
    print(f"difference to {reference} with its paired 90% interval\n")
    print("| model | ROC-AUC per folder | mean +- sd | - reference per folder | mean +- sd |")
    print("|---|---|---|---|---|")
    for m in models:
        auc = [r[m]["roc_auc"]["point"] for r in rows]
        line = f"| {entry_label(m, rows[0][m])} | {', '.join(f'{a:.3f}' for a in auc)} | {mean_sd(auc)} |"
        if m == reference:
            print(line + " | |")
            continue
        diffs = [r[m]["vs_reference"]["roc_auc_diff"] for r in rows]
        cells = ", ".join(
            f"{d['point']:+.3f} ({d['lower']:+.3f} to {d['upper']:+.3f})" for d in diffs
        )
        print(f"{line} {cells} | {mean_sd([d['point'] for d in diffs], sign=True)} |")
    return 0


def mean_sd(values: list[float], sign: bool = False) -> str:
    m = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:+.3f} +- {sd:.3f}" if sign else f"{m:.3f} +- {sd:.3f}"


if __name__ == "__main__":
    sys.exit(main())
