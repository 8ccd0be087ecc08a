"""Try recipe variants on the benchmark split and rank them by VALIDATION macro ROC-AUC.

    python benchmarks/sweep_recipe.py --data-root ../shared/ptbxl-dev --out runs/sweep \\
        --model resnet1d_wang --epochs 30 --train-folds 1-7 --val-fold 8 --test-fold 9 \\
        --variant base '{}' --variant aug '{"scale_std": 0.1, "wander_mv": 0.1}'

Each variant is the benchmark recipe with the JSON overrides applied (any Recipe field), trained into
OUT/NAME as an ordinary run folder (finished variants are not retrained). The table ranks by the
validation fold, the only fair basis for choosing; the test column is there to be reported for the
chosen variant, not to choose by.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ecgcnn.cli import parse_folds
from ecgcnn.recipes import get_recipe
from ecgcnn.train import TrainConfig, fmt, train


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="resnet1d_wang")
    ap.add_argument("--task", default="superdiagnostic")
    ap.add_argument("--recipe", default="benchmark")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--train-folds", default="1-7")
    ap.add_argument("--val-fold", type=int, default=8)
    ap.add_argument("--test-fold", type=int, default=9)
    ap.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), required=True)
    args = ap.parse_args(argv)
    rows = []
    for name, overrides in args.variant:
        settings = json.loads(overrides)
        if not isinstance(settings, dict):
            ap.error(f"variant {name}: expected a JSON object of recipe settings, got {overrides}")
        recipe = get_recipe(args.recipe).with_overrides(**({"epochs": args.epochs} | settings))
        recipe.validate()
        cfg = TrainConfig(
            data_root=args.data_root, out=str(Path(args.out) / name), model=args.model,
            task=args.task, protocol="benchmark", seed=args.seed, recipe=recipe,
            train_folds=parse_folds(args.train_folds), val_fold=args.val_fold,
            test_fold=args.test_fold, only_fold=0, progress=False,
        )  # fmt: skip
        result = train(cfg, resume=True)
        rows.append(
            (name, overrides, result["val"]["roc_auc_macro"], result["test"]["roc_auc_macro"])
        )
        print(f"{name}: val {fmt(rows[-1][2])} test {fmt(rows[-1][3])}", flush=True)
    print(f"\n{args.model} on {args.task}, ranked by validation macro ROC-AUC\n")
    print("| variant | overrides | validation | test |\n|---|---|---|---|")
    for name, overrides, val, test in sorted(rows, key=lambda r: -(r[2] or 0.0)):
        print(f"| {name} | `{overrides}` | {fmt(val)} | {fmt(test)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
