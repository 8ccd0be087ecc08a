"""Test figures of finished runs against a reference run of the same seed, paired as the leaderboard pairs.

    python benchmarks/paired_runs.py \\
        --runs runs/sweep6/fcn_wang/bs32_auxall/seed1 runs/sweep6/fcn_wang/bs32_auxall/seed2 \\
               runs/sweep7-test/bs32_auxall \\
        --reference runs/bench-bs32/seed{1,2,3}/superdiagnostic/cnn1d@seed

For runs trained outside `ecgcnn benchmark` (a recipe sweep, `ecgcnn train --protocol benchmark`):
the i-th run is compared with the i-th reference on the test fold (same records required), with the
leaderboard's paired bootstrap (100 resamples, bootstrap seed 0 unless told). Prints per pair the
run's macro ROC-AUC and its difference to the reference with the 90% interval, then mean +- sd.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

from ecgcnn.bootstrap import paired_bootstrap_auc


def test_predictions(run: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """A run's test predictions (its single fold's predictions_test.npz) and its classes."""
    found = sorted(run.glob("*/predictions_test.npz")) or sorted(run.glob("predictions_test.npz"))
    if len(found) != 1:
        raise SystemExit(f"{run}: expected one fold with predictions_test.npz, found {len(found)}")
    config = run / "config.json" if (run / "config.json").is_file() else run.parent / "config.json"
    if not config.is_file():
        raise SystemExit(f"{run}: no config.json (the run's classes) in it or its parent")
    with np.load(found[0]) as z:
        preds = {k: z[k] for k in ("y_true", "y_prob", "ecg_ids")}
    return preds, json.loads(config.read_text())["classes"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", nargs="+", type=Path, required=True)
    ap.add_argument("--reference", nargs="+", type=Path, required=True)
    ap.add_argument("--resamples", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = ap.parse_args(argv)
    if len(args.runs) != len(args.reference):
        ap.error(f"{len(args.runs)} runs but {len(args.reference)} references: one each")
    print("| run | test macro ROC-AUC | reference | difference (paired 90% interval) |")
    print("|---|---|---|---|")
    aucs, diffs = [], []
    for run, ref in zip(args.runs, args.reference, strict=True):
        (a, classes), (b, ref_classes) = test_predictions(run), test_predictions(ref)
        if classes != ref_classes or not np.array_equal(a["ecg_ids"], b["ecg_ids"]):
            ap.error(f"{run} and {ref} were not tested on the same records and classes")
        paired = paired_bootstrap_auc(a["y_true"], a["y_prob"], b["y_prob"], classes,
                                      n_resamples=args.resamples, seed=args.seed)  # fmt: skip
        d = paired.roc_auc_diff
        aucs.append(paired.a.roc_auc.point)
        diffs.append(d.point)
        print(f"| {run} | {paired.a.roc_auc.point:.4f} | {paired.b.roc_auc.point:.4f} | "
              f"{d.point:+.4f} ({d.lower:+.4f} to {d.upper:+.4f}) |")  # fmt: skip
    if len(aucs) > 1:
        print(f"\nmean +- sd: ROC-AUC {statistics.fmean(aucs):.4f} +- {statistics.stdev(aucs):.4f}; "
              f"difference {statistics.fmean(diffs):+.4f} +- {statistics.stdev(diffs):.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
