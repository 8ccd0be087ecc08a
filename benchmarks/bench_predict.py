"""Prediction figures for BENCHMARKS.md: `ecgcnn predict` from files vs wfdb alone, latency, model-only rate.

    python benchmarks/bench_predict.py --data-root ../shared/ptbxl-dev --out benchmarks/results/predict.json
    python benchmarks/bench_predict.py --data-root ../shared/ptbxl-dev --checkpoint runs/a/fold_0/checkpoint.pt \\
        --checkpoint runs/b/benchmark/checkpoint.pt --out benchmarks/results/predict.json

N records (default 1,000) are copied from the root into a temporary folder (sampled with a fixed seed;
repeated under other folder names when the root has fewer). Every figure is measured in this one
process, after one untimed pass over the files (so every reader sees a warm page cache): process
start-up and imports are NOT included; the reader processes' start-up inside `predict` IS. Without
--checkpoint a cnn1d is trained for one epoch on the root first (its accuracy is irrelevant here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import torch
import wfdb

from ecgcnn import __version__
from ecgcnn.export import export_onnx
from ecgcnn.predict import Predictor, reader_processes, torch_threads
from ecgcnn.records import RATES, load_database


def copy_records(root: Path, fs: int, n: int, dest: Path, seed: int = 0) -> list[Path]:
    """N WFDB records of ``root`` copied under ``dest``; returns their paths without extension."""
    db = load_database(root)
    names = db.records[RATES[fs]].to_numpy()
    order = np.random.default_rng(seed).permutation(len(names))
    out = []
    for k in range(n):
        rel = Path(str(names[order[k % len(names)]]))
        target = dest / f"copy{k // len(names)}" / rel.parent.name / rel.name
        target.parent.mkdir(parents=True, exist_ok=True)
        for ext in (".hea", ".dat"):
            shutil.copyfile(root / f"{rel}{ext}", f"{target}{ext}")
        out.append(target)
    return out


def warm(paths: list[Path]) -> None:
    for p in paths:
        for ext in (".hea", ".dat"):
            Path(f"{p}{ext}").read_bytes()


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1)


def wfdb_only(paths: list[Path]) -> dict:
    start = time.perf_counter()
    for p in paths:
        wfdb.rdsamp(str(p))
    seconds = time.perf_counter() - start
    return {"records_per_s": rate(len(paths), seconds), "seconds": round(seconds, 3)}


def end_to_end(predictor: Predictor, folder: Path, n: int, workers: int | None) -> dict:
    start = time.perf_counter()
    result = predictor.predict_paths([folder], workers=workers, progress=False)
    seconds = time.perf_counter() - start
    assert len(result.predictions) == n and not result.failures, result.summary()
    return {
        "records_per_s": rate(n, seconds),
        "seconds": round(seconds, 3),
        "reader_processes": reader_processes(workers, n),
    }


def latency(predictor: Predictor, paths: list[Path]) -> dict:
    predictor.predict_record(paths[0])  # first call: allocator and kernel warm-up
    times = []
    for p in paths:
        start = time.perf_counter()
        predictor.predict_record(p)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    return {
        "records": len(paths),
        "median_ms": round(float(np.median(ms)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


def model_only(predictor: Predictor, n: int, repeats: int = 3) -> dict:
    """Records/s of the model alone on (n, 12, window) in memory, batches of predictor.batch_size."""
    x = np.random.default_rng(0).normal(scale=0.3, size=(n, len(predictor.leads), predictor.window))
    x = x.astype(np.float32)
    predictor.predict_windows(x[: predictor.batch_size])
    best = min(_timed(predictor.predict_windows, x) for _ in range(repeats))
    return {"records_per_s": rate(n, best), "batch_size": predictor.batch_size, "records": n}


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def quick_checkpoint(root: Path, fs: int, work: Path) -> Path:
    from ecgcnn.recipes import get_recipe
    from ecgcnn.train import TrainConfig, train

    cfg = TrainConfig(data_root=str(root), out=str(work / "run"), fs=fs, folds=2, only_fold=0,
                      recipe=get_recipe("seed").with_overrides(epochs=1, batch_size=64),
                      skip_missing=True, cache_dir=str(work / "cache"), progress=False)  # fmt: skip
    train(cfg)
    return work / "run" / "fold_0" / "checkpoint.pt"


def bench_checkpoint(ckpt: Path, folder: Path, paths: list[Path], args, work: Path) -> dict:
    onnx_path = work / f"{ckpt.parent.name}-{ckpt.stem}.onnx"
    start = time.perf_counter()
    export_onnx(ckpt, onnx_path)
    export_s = time.perf_counter() - start
    n_lat = min(args.latency_records, len(paths))
    out = {"checkpoint": str(ckpt), "onnx_export_s": round(export_s, 2)}
    for backend, load in (("pytorch", lambda: Predictor.from_checkpoint(ckpt)),
                          ("onnxruntime", lambda: Predictor.from_onnx(onnx_path))):  # fmt: skip
        start = time.perf_counter()
        predictor = load()
        fig = {
            "model": predictor.describe()["name"],
            "load_s": round(time.perf_counter() - start, 3),
        }
        predictor.predict_record(paths[0])  # untimed: first-call set-up of the kernels
        fig["end_to_end"] = end_to_end(predictor, folder, len(paths), args.workers)
        if args.workers is None:  # both ways of reading, whichever the default picked
            fig["end_to_end_in_process"] = end_to_end(predictor, folder, len(paths), 0)
            fig["end_to_end_reader_processes"] = end_to_end(
                predictor, folder, len(paths), os.cpu_count()
            )
        fig["latency_single_record"] = latency(predictor, paths[:n_lat])
        fig["model_only"] = model_only(predictor, args.model_records)
        if backend == "pytorch":  # intra-op threads only pay on a quiet machine: show both
            with torch_threads(1):
                fig["latency_single_record_1_thread"] = latency(predictor, paths[:n_lat])
                fig["model_only_1_thread"] = model_only(predictor, args.model_records)
        out[backend] = fig
        print(f"{backend}: {json.dumps(fig)}", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data-root", type=Path, default=Path("../shared/ptbxl-dev"))
    ap.add_argument("--checkpoint", type=Path, action="append", default=[],
                    help="checkpoint(s) to measure (repeat); default: a quick cnn1d")  # fmt: skip
    ap.add_argument("--records", type=int, default=1000, help="records in the folder predicted")
    ap.add_argument("--fs", type=int, default=100)
    ap.add_argument("--latency-records", type=int, default=200)
    ap.add_argument("--model-records", type=int, default=2048, help="windows for model-only")
    ap.add_argument("--workers", type=int, default=None, help="reader processes (default: auto)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        work = Path(tmp)
        folder = work / "records"
        paths = copy_records(args.data_root, args.fs, args.records, folder)
        checkpoints = args.checkpoint or [quick_checkpoint(args.data_root, args.fs, work)]
        warm(paths)
        read = wfdb_only(paths)
        print(f"wfdb only: {json.dumps(read)}", file=sys.stderr)
        results = [bench_checkpoint(c, folder, paths, args, work) for c in checkpoints]
        read_again = wfdb_only(paths)  # the machine's state may drift during the run: bracket it
    for r in results:
        for backend in ("pytorch", "onnxruntime"):
            fig = r[backend]
            fig["end_to_end_vs_wfdb_only"] = round(
                fig["end_to_end"]["records_per_s"] / read["records_per_s"], 3
            )
    report = {
        "benchmark": "predict",
        "process_startup_included": False,
        "reader_process_startup_included": True,
        "page_cache": "warm (one untimed pass over the files first)",
        "records": args.records,
        "fs": args.fs,
        "data_root": str(args.data_root),
        "wfdb_only": read,
        "wfdb_only_after": read_again,
        "checkpoints": results,
        "targets": {
            "end_to_end_vs_wfdb_only": ">= 0.75",
            "model_only_cnn1d_records_per_s": ">= 1000",
        },
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "onnxruntime": onnxruntime.__version__,
            "wfdb": wfdb.__version__,
            "pandas": pd.__version__,
            "ecgcnn": __version__,
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
