"""Time the record cache and the treated-record caches of a root: built from the files, then reopened.

    python benchmarks/bench_cache.py --data-root ../shared/ptbxl-dev --out benchmarks/results/cache.json

Each baseline (keep: the record cache itself; median, highpass: the files `train --baseline` and
`evaluate` use beside it) is built into a fresh cache folder, then loaded again as a later run would.
Prints a markdown table; writes the figures as JSON with the machine's description.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from ecgcnn import atomic
from ecgcnn.cache import load_signals
from ecgcnn.errors import EcgcnnError
from ecgcnn.recording import BASELINES
from ecgcnn.records import load_database


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--fs", type=int, default=100)
    parser.add_argument("--out", help="JSON file for the figures")
    parser.add_argument("--skip-missing", action="store_true", help="leave unreadable records out")
    args = parser.parse_args()

    db = load_database(args.data_root)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ecgcnn-bench-cache-") as where:
        for how in BASELINES:  # keep first: the others are made from the record cache
            times = []
            for _ in range(2):
                start = time.perf_counter()
                signals = load_signals(
                    db, args.fs, where, args.skip_missing, progress=False, baseline=how
                )
                times.append(time.perf_counter() - start)
            name = f"signals_{args.fs}hz.npy" if how == "keep" else f"signals_{args.fs}hz_{how}.npy"
            rows.append({"baseline": how, "records": len(signals.ecg_ids), "build_s": round(times[0], 3),
                         "reopen_s": round(times[1], 4),
                         "file_mib": round((Path(where) / name).stat().st_size / 2**20, 1)})  # fmt: skip
    print(
        f"| baseline | records at {args.fs} Hz | first load (build) | later load (reopen) | file |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['baseline']} | {r['records']} | {r['build_s']:.2f} s | {r['reopen_s']:.3f} s | "
              f"{r['file_mib']} MiB |")  # fmt: skip
    if args.out:
        machine = {"platform": platform.platform(), "python": platform.python_version(),
                   "cpus": os.cpu_count()}  # fmt: skip
        atomic.write_json(Path(args.out), {"data_root": str(args.data_root), "fs": args.fs, "rows": rows,
                                           "machine": machine})  # fmt: skip


if __name__ == "__main__":
    try:
        main()
    except EcgcnnError as exc:
        raise SystemExit(f"error: {exc}") from None
