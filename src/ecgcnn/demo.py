"""The embedded default: synthetic PTB-XL on disk, then cross-validated cnn1d training and evaluation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ecgcnn.evaluate import evaluate_run
from ecgcnn.recipes import get_recipe
from ecgcnn.synthetic import write_synthetic_ptbxl
from ecgcnn.train import TrainConfig, train

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
    """Write synthetic data to ``out/synthetic-ptbxl``, train with CV into ``out``, evaluate every fold."""
    out = Path(out)
    data_root = out / "synthetic-ptbxl"
    if not (data_root / "ptbxl_database.csv").is_file():
        log.info("writing synthetic PTB-XL (%d patients) to %s", n_patients, data_root)
        write_synthetic_ptbxl(data_root, n_patients=n_patients, seed=seed, progress=progress)
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
    results = train(cfg)
    evaluate_run(out)
    return results
