"""Speed of every registered model on this machine: training samples/s and inference records/s.

    python benchmarks/bench_models.py                       # every model, JSON on stdout
    python benchmarks/bench_models.py --models xresnet1d18,cnn1d --out benchmarks/results/models.json
    python benchmarks/bench_models.py --threads 1      # one thread: steadier when the CPU is shared

Training: the benchmark recipe's step (batch 128, random 2.5 s windows cut from 10 s records at
100 Hz, AdamW, unweighted BCE), timed over a few steps after warm-up. Inference: 10 s records scored
as 7 windows of 2.5 s at a 1.25 s stride, aggregated by max. The data are random tensors already in
memory, so the figures are the models' cost, not the loader's. Rates come from the median step;
another process sharing the CPU still lowers them: compare numbers from one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from ecgcnn.models import Classifier, count_parameters, create_model, list_models
from ecgcnn.windows import aggregate, random_windows, sliding_windows

FS = 100
RECORD_SAMPLES = 10 * FS
WINDOW = 250
STRIDE = 125
CLASSES = 5


def _timed(fn, repeats: int) -> dict:
    """Median (the rate's basis: robust to a neighbour's burst of CPU use), min and max seconds."""
    seconds = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        seconds.append(time.perf_counter() - start)
    return {"median_s": statistics.median(seconds), "min_s": min(seconds), "max_s": max(seconds),
            "repeats": repeats}  # fmt: skip


def training_rate(name: str, batch_size: int, warmup: int, steps: int) -> dict:
    """Samples per second of full training steps (crop, forward, backward, AdamW update)."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    records = torch.randn(batch_size * 4, 12, RECORD_SAMPLES, generator=gen)
    labels = torch.randint(0, 2, (len(records), CLASSES), generator=gen).float()
    model = Classifier(create_model(name, CLASSES), torch.zeros(12), torch.ones(12)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def step(i: int) -> None:
        rows = torch.arange(i * batch_size, (i + 1) * batch_size) % len(records)
        x = random_windows(records[rows], WINDOW, gen)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), labels[rows]).backward()
        opt.step()

    for i in range(warmup):
        step(i)
    seconds = _timed(lambda i: step(warmup + i), steps)
    return {
        "samples_per_s": batch_size / seconds["median_s"],
        "step_s": seconds,
        "batch_size": batch_size,
    }


@torch.inference_mode()
def inference_rate(name: str, records_per_batch: int, warmup: int, batches: int) -> dict:
    """Records per second, each scored as 7 sliding windows whose probabilities are max-pooled."""
    gen = torch.Generator().manual_seed(1)
    model = Classifier(create_model(name, CLASSES), torch.zeros(12), torch.ones(12)).eval()
    x = torch.randn(records_per_batch, 12, RECORD_SAMPLES, generator=gen)

    def score() -> torch.Tensor:
        windows = sliding_windows(x, WINDOW, STRIDE)
        n_windows = windows.shape[1]
        probs = torch.sigmoid(model(windows.reshape(-1, 12, WINDOW)))
        return aggregate(probs.reshape(len(x), n_windows, -1), "max")

    for _ in range(warmup):
        score()
    seconds = _timed(lambda _: score(), batches)
    return {
        "records_per_s": records_per_batch / seconds["median_s"],
        "batch_s": seconds,
        "windows_per_record": len(sliding_windows(x[:1], WINDOW, STRIDE)[0]),
        "records_per_batch": records_per_batch,
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--models", default=",".join(list_models()), help="comma-separated names")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5, help="timed training steps per model")
    p.add_argument("--records", type=int, default=64, help="records per inference batch")
    p.add_argument("--batches", type=int, default=3, help="timed inference batches per model")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "setting": {"fs": FS, "window": WINDOW, "stride": STRIDE, "classes": CLASSES},
        "models": {},
    }
    for name in args.models.split(","):
        entry = {
            "parameters": count_parameters(create_model(name, CLASSES)),
            "training": training_rate(name, args.batch_size, args.warmup, args.steps),
            "inference": inference_rate(name, args.records, 1, args.batches),
        }
        results["models"][name] = entry
        print(json.dumps({name: entry}), file=sys.stderr, flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
