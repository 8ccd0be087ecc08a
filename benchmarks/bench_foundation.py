"""Foundation figures for BENCHMARKS.md: cache, loader, training throughput, memory, and the seed loop.

    python benchmarks/bench_foundation.py --data-root ../shared/ptbxl-dev --out benchmarks/results/foundation.json
    python benchmarks/bench_foundation.py --data-root ../shared/ptbxl-dev --full-cv   # + both 5-fold runs (~15 min)

Every figure is measured in this one process, side by side, on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ecgcnn.augment import Augment  # noqa: E402
from ecgcnn.cache import load_signals  # noqa: E402
from ecgcnn.dataset import RecordDataset, collate_batch, standardization  # noqa: E402
from ecgcnn.labels import make_labels  # noqa: E402
from ecgcnn.models import Classifier, create_model  # noqa: E402
from ecgcnn.recipes import get_recipe  # noqa: E402
from ecgcnn.records import load_database  # noqa: E402
from ecgcnn.train import TrainConfig, train  # noqa: E402
from original_loop import WfdbDataset, run_fold  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def loader_rate(dataset, batch_size: int, max_samples: int) -> float:
    """Samples per second delivered by a shuffled DataLoader, no model attached."""
    gen = torch.Generator().manual_seed(0)
    kwargs = {"collate_fn": collate_batch} if isinstance(dataset, RecordDataset) else {}
    seen, start = 0, time.perf_counter()
    while seen < max_samples:
        for x, _ in DataLoader(
            dataset, batch_size=batch_size, shuffle=True, generator=gen, **kwargs
        ):
            seen += len(x)
            if seen >= max_samples:
                break
    return seen / (time.perf_counter() - start)


def train_rate(
    name: str, data: np.ndarray, rows: np.ndarray, y: np.ndarray, batch_size: int = 16
) -> dict:
    """One training epoch over ``rows`` with the seed recipe's settings."""
    torch.manual_seed(0)
    mean, std = standardization(data, rows)
    model = Classifier(
        create_model(name, y.shape[1]), torch.from_numpy(mean), torch.from_numpy(std)
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    ds = RecordDataset(
        data, rows, y, Augment(noise_std=0.02), generator=torch.Generator().manual_seed(0)
    )
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, collate_fn=collate_batch)
    model.train()
    start = time.perf_counter()
    for x, t in loader:
        opt.zero_grad()
        loss_fn(model(x), t).backward()
        opt.step()
    seconds = time.perf_counter() - start
    return {"epoch_s": seconds, "samples_per_s": len(rows) / seconds, "records": len(rows)}


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/foundation.json"))
    p.add_argument(
        "--full-cv", action="store_true", help="also time both complete 5-fold cnn1d runs"
    )
    p.add_argument(
        "--baseline-samples", type=int, default=600, help="samples read by the WFDB loader"
    )
    args = p.parse_args()
    results: dict = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": torch.get_num_threads(), "torch": torch.__version__},
        "data_root": str(args.data_root),
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = Path(tmp) / "cache"
        db, load_db_s = timed(load_database, args.data_root)
        signals, build_s = timed(load_signals, db, 100, cache_dir, progress=False)
        start = time.perf_counter()
        db2 = load_database(args.data_root)
        signals2 = load_signals(db2, 100, cache_dir, progress=False)
        cached_total = time.perf_counter() - start
        _, cached_signals_s = timed(load_signals, db2, 100, cache_dir, progress=False)
        results["cache"] = {
            "records": int(signals.data.shape[0]),
            "build_s": build_s,
            "load_metadata_s": load_db_s,
            "cached_load_signals_s": cached_signals_s,
            "cached_load_total_s": cached_total,
            "cache_mib": signals.data.nbytes / 2**20,
        }
        print(json.dumps(results["cache"], indent=2), flush=True)

        labels = make_labels(db, "top5")
        rows = signals2.rows(labels.ecg_ids)
        ours = loader_rate(
            RecordDataset(signals2.data, rows, labels.y, Augment(noise_std=0.02)), 16, 5 * len(rows)
        )
        theirs = loader_rate(WfdbDataset(db, labels.ecg_ids, labels.y), 16, args.baseline_samples)
        results["loader"] = {
            "ecgcnn_samples_per_s": ours,
            "wfdb_per_sample_samples_per_s": theirs,
            "speedup": ours / theirs,
            "batch_size": 16,
        }
        print(json.dumps(results["loader"], indent=2), flush=True)

        n_train = int(0.8 * len(rows))
        results["training"] = {
            name: train_rate(name, signals2.data, rows[:n_train], labels.y[:n_train])
            for name in ("cnn1d", "cnn2d")
        }
        print(json.dumps(results["training"], indent=2), flush=True)

        if args.full_cv:
            cfg = TrainConfig(data_root=str(args.data_root), out=str(Path(tmp) / "run"), cache_dir=str(cache_dir),
                              recipe=get_recipe("seed"), progress=False)  # fmt: skip
            cv, ours_s = timed(train, cfg)
            split = json.loads((Path(tmp) / "run" / "splits.json").read_text())["splits"]
            start = time.perf_counter()
            for fold in split.values():
                val = np.isin(labels.ecg_ids, fold["val_ecg_ids"])
                run_fold(
                    db, labels.ecg_ids[~val], labels.y[~val], labels.ecg_ids[val], labels.y[val]
                )
            theirs_s = time.perf_counter() - start
            results["full_cv"] = {
                "ecgcnn_s": ours_s,
                "ecgcnn_with_cache_build_s": ours_s + build_s,
                "original_loop_s": theirs_s,
                "speedup": theirs_s / ours_s,
                "speedup_with_cache_build": theirs_s / (ours_s + build_s),
                "ecgcnn_cv_mean_std": cv["mean_std"],
            }
            print(json.dumps(results["full_cv"], indent=2), flush=True)
    results["peak_rss_mib"] = peak_rss_mib()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
