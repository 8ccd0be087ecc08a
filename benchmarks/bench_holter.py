"""Holter figures for BENCHMARKS.md: `ecgcnn predict --every` on a long 12-lead ISHNE recording.

    python benchmarks/bench_holter.py --checkpoint runs/x/checkpoint.pt --hours 24 --out benchmarks/results/holter.json
    python benchmarks/bench_holter.py --checkpoint CKPT --hours 1 --whole   # also without --every, read whole

A synthetic 12-lead ISHNE Holter of --hours at --fs Hz (2.5 µV a step, as THEW's) is written to a
temporary folder (10 minutes of synthetic ECG, its rhythm changing every 10 s, repeated), then
`ecgcnn predict --every` runs on it in a child process; wall time and the child's peak resident memory
(`/usr/bin/time -f %M`) are reported, with Python's and torch's start-up included.
"""

from __future__ import annotations

import argparse
import binascii
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ecgcnn import __version__
from ecgcnn.holter import FIXED_HEADER, HEADER_BYTES
from ecgcnn.synthetic import synthesize_ecg

BLOCK_S = 600  # the synthetic stretch that is repeated
RESOLUTION_NV = 2500
STATEMENTS = ("NORM", "AFIB", "NORM", "CLBBB", "NORM", "IMI")


def write_holter(path: Path, hours: float, fs: int, seed: int = 0) -> int:
    """A 12-lead ISHNE file of ``hours`` at ``fs`` Hz; returns its samples per lead."""
    rng = np.random.default_rng(seed)
    block = np.concatenate([
        synthesize_ecg([STATEMENTS[k % len(STATEMENTS)]], fs=fs, duration_s=10.0, rng=rng)
        for k in range(BLOCK_S // 10)
    ])  # fmt: skip
    counts = np.round(block * 1e6 / RESOLUTION_NV).astype("<i2")
    samples = int(round(hours * 3600 * fs))
    fixed = FIXED_HEADER.pack(
        0, samples, HEADER_BYTES, HEADER_BYTES, 1, b"Bench", b"Holter", b"B-1", 1, 1, 1, 1, 1970,
        1, 1, 2026, 1, 1, 2026, 0, 0, 0, 12, *range(5, 17), *[1] * 12, *[RESOLUTION_NV] * 12, 0,
        b"synthetic", fs, b"", b"", b"",
    )  # fmt: skip
    with open(path, "wb") as f:
        f.write(b"ISHNE1.0" + struct.pack("<H", binascii.crc_hqx(fixed, 0xFFFF)) + fixed)
        left = samples
        while left > 0:
            piece = counts[: min(left, len(counts))]
            f.write(piece.tobytes())
            left -= len(piece)
    return samples


def run_predict(checkpoint: Path, holter: Path, out: Path, every: float | None) -> dict:
    """`ecgcnn predict` in a child process: wall time, peak memory, what it wrote."""
    cmd = [sys.executable, "-m", "ecgcnn", "predict", "--checkpoint", str(checkpoint), str(holter),
           "--format", "csv", "--out", str(out), "--no-progress"]  # fmt: skip
    if every is not None:
        cmd += ["--every", f"{every:g}"]
    timed = ["/usr/bin/time", "-f", "peak_kb %M"] if Path("/usr/bin/time").is_file() else []
    start = time.perf_counter()
    proc = subprocess.run(timed + cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"ecgcnn predict failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    peak = [line for line in proc.stderr.splitlines() if line.startswith("peak_kb ")]
    rows = len(pd.read_csv(out))
    return {
        "every_s": every,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(int(peak[-1].split()[1]) / 1024, 1) if peak else None,
        "rows": rows,
        "summary": next(line for line in proc.stderr.splitlines() if line.startswith("predicted")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--fs", type=int, default=1000)
    ap.add_argument("--every", type=float, default=10.0)
    ap.add_argument(
        "--whole", action="store_true", help="also predict without --every (read whole)"
    )
    ap.add_argument("--out", type=Path, help="write the figures here (JSON)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        holter = Path(tmp) / "holter.ecg"
        start = time.perf_counter()
        samples = write_holter(holter, args.hours, args.fs)
        written = time.perf_counter() - start
        size = holter.stat().st_size
        print(f"wrote {holter.name}: {args.hours:g} h, 12 leads at {args.fs} Hz, "
              f"{size / 2**20:,.0f} MiB in {written:.0f} s", file=sys.stderr)  # fmt: skip
        runs = [run_predict(args.checkpoint, holter, Path(tmp) / "every.csv", args.every)]
        if args.whole:
            runs.append(run_predict(args.checkpoint, holter, Path(tmp) / "whole.csv", None))
    result = {
        "holter": {
            "hours": args.hours,
            "fs": args.fs,
            "leads": 12,
            "samples_per_lead": samples,
            "bytes": size,
        },  # fmt: skip
        "checkpoint": str(args.checkpoint),
        "runs": runs,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "ecgcnn": __version__,
        },  # fmt: skip
    }
    for run in runs:
        mode = f"--every {run['every_s']:g}" if run["every_s"] else "whole record"
        print(f"| {mode} | {run['rows']:,} rows | {run['wall_s']:.1f} s | "
              f"{run['peak_rss_mb']} MB peak |")  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
