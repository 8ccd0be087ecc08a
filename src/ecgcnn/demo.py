"""The embedded default: synthetic PTB-XL on disk, then cross-validated cnn1d training and evaluation."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from ecgcnn.errors import EcgcnnError
from ecgcnn.evaluate import evaluate_run
from ecgcnn.recipes import get_recipe
from ecgcnn.synthetic import write_synthetic_ptbxl
from ecgcnn.train import TrainConfig, check_same_run, train, work_in_run

log = logging.getLogger(__name__)


def run_demo(
    out: str | Path = "runs/demo",
    n_patients: int = 300,
    model: str = "cnn1d",
    folds: int = 5,
    epochs: int | None = None,
    seed: int = 42,
    progress: bool = True,
) -> dict[str, Any]:
    """Write synthetic data to ``out/synthetic-ptbxl``, train with CV into ``out``, evaluate every fold.

    Run again with the same settings, it goes on from what the folder holds, as ``ecgcnn train``
    does (finished folds are not retrained). Other settings, or another number of patients, are
    refused, as by ``ecgcnn train``, before anything is rewritten: a run folder holds one run.
    """
    out = Path(out)
    data_root = out / "synthetic-ptbxl"
    cfg = TrainConfig(
        data_root=str(data_root),
        out=str(out),
        model=model,
        task="top5",
        protocol="cv",
        folds=folds,
        seed=seed,
        recipe=get_recipe("seed").with_overrides(epochs=epochs),
        cache_dir=str(out / "cache"),
        progress=progress,
    )
    check_same_run(out / "config.json", cfg.to_dict(), quiet=True)
    database = data_root / "ptbxl_database.csv"
    if database.is_file():
        try:
            held = pd.read_csv(database, usecols=["patient_id"])["patient_id"].nunique()
        except (ValueError, OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise EcgcnnError(f"{database}: not the demo's synthetic database ({exc}); choose "
                              "another --out") from None  # fmt: skip
        a_run = (out / "config.json").is_file() or (out / "splits.json").is_file()
        if held != n_patients and a_run:
            raise EcgcnnError(
                f"{out} already holds a demo on {held} synthetic patients, not {n_patients}; "
                "choose another --out"
            )
        if held != n_patients:  # data without a run: the demo's own, written again
            shutil.rmtree(data_root)
    if not database.is_file():
        log.info("writing synthetic PTB-XL (%d patients) to %s", n_patients, data_root)
        write_synthetic_ptbxl(data_root, n_patients=n_patients, seed=seed, progress=progress)
    held_folds = work_in_run(cfg)
    if held_folds:
        log.info("%s already holds %s: continuing", out, ", ".join(held_folds))
    results = train(cfg, resume=bool(held_folds))
    evaluate_run(out)
    return results
