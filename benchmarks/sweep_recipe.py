"""Try recipe variants on the benchmark split and rank them by VALIDATION macro ROC-AUC.

    python benchmarks/sweep_recipe.py --data-root ../shared/ptbxl-dev --out runs/sweep \\
        --model resnet1d_wang --epochs 30 --train-folds 1-7 --val-fold 8 --test-fold 9 \\
        --variant base '{}' --variant aug '{"scale_std": 0.1, "wander_mv": 0.1}' [--seeds 42,1,2]

Each variant is the benchmark recipe with the JSON overrides applied (any Recipe field), trained into
OUT/NAME as an ordinary run folder (finished variants are not retrained); with several seeds, into
OUT/NAME/seedS and ranked by the mean over seeds (one run moves by 0.005-0.01 with its seed, as much
as most recipe changes). The table ranks by the validation fold, the only fair basis for choosing;
the test column is there to be reported for the chosen variant, not to choose by. Every variant is
checked before the first one trains.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from ecgcnn.cli import parse_folds
from ecgcnn.errors import EcgcnnError
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
    ap.add_argument("--seeds", "--seed", default="42", help="one seed, or several: 42,1,2")
    ap.add_argument("--train-folds", default="1-7")
    ap.add_argument("--val-fold", type=int, default=8)
    ap.add_argument("--test-fold", type=int, default=9)
    ap.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "JSON"), required=True)
    args = ap.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds: expected integers separated by commas, got {args.seeds!r}")
    # every variant is checked before the first one trains
    recipes = {}
    for name, overrides in args.variant:
        try:
            settings = json.loads(overrides)
        except json.JSONDecodeError as e:
            ap.error(f"variant {name}: {overrides!r} is not JSON ({e})")
        if not isinstance(settings, dict):
            ap.error(f"variant {name}: expected a JSON object of recipe settings, got {overrides}")
        try:
            recipes[name] = get_recipe(args.recipe).with_overrides(
                **({"epochs": args.epochs} | settings)
            )
            recipes[name].validate()
        except EcgcnnError as e:
            ap.error(f"variant {name}: {e}")
    rows = []
    for name, overrides in args.variant:
        val, test = [], []
        for seed in seeds:
            # one seed: OUT/NAME, as before; several: OUT/NAME/seedS
            out = Path(args.out) / name / (f"seed{seed}" if len(seeds) > 1 else "")
            cfg = TrainConfig(
                data_root=args.data_root, out=str(out), model=args.model, task=args.task,
                protocol="benchmark", seed=seed, recipe=recipes[name],
                train_folds=parse_folds(args.train_folds), val_fold=args.val_fold,
                test_fold=args.test_fold, only_fold=0, progress=False,
            )  # fmt: skip
            result = train(cfg, resume=True)
            val.append(result["val"]["roc_auc_macro"])
            test.append(result["test"]["roc_auc_macro"])
            print(f"{name} seed {seed}: val {fmt(val[-1])} test {fmt(test[-1])}", flush=True)
        rows.append((name, overrides, val, test))
    over = f"the mean over seeds {args.seeds}" if len(seeds) > 1 else f"seed {seeds[0]}"
    print(f"\n{args.model} on {args.task}, ranked by validation macro ROC-AUC ({over})\n")
    print(
        "| variant | overrides | validation | test | validation per seed |\n|---|---|---|---|---|"
    )
    for name, overrides, val, test in sorted(rows, key=lambda r: -mean(r[2])):
        per_seed = ", ".join(fmt(v) for v in val)
        print(f"| {name} | `{overrides}` | {mean(val):.4f} | {mean(test):.4f} | {per_seed} |")
    return 0


def mean(values: list[float | None]) -> float:
    """The mean of the seeds' AUCs (nan when a split could not be scored)."""
    return statistics.fmean(v if v is not None else float("nan") for v in values)


if __name__ == "__main__":
    sys.exit(main())
