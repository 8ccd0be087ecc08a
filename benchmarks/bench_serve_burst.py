"""Server memory under a burst of large requests: N at once, each near --max-body-mb.

    python benchmarks/bench_serve_burst.py --checkpoint runs/bench-dev/superdiagnostic/cnn1d/benchmark/checkpoint.pt \\
        --concurrency 24 --out benchmarks/results/serve-burst.json
    python benchmarks/bench_serve_burst.py ... --max-inflight-mb 1000   # (practically) no in-flight budget

A real `ecgcnn serve` (one worker, --max-body-mb 8, as deploy/k8s/deployment.yaml runs it) on a free
loopback port; --concurrency clients each POST the same JSON body at the same time: 12 leads at 1000 Hz, values
with 4 decimals, up to --seconds s but cut to at most --body-mb (8 MB: inside both --max-body-mb
8 MiB and --max-duration), --rounds times. Reported: each answer's status, the wall time, and the server's
peak resident memory (VmHWM, the kernel's own high-water mark, so no burst falls between samples).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

from ecgcnn import __version__
from ecgcnn.atomic import write_json

MiB = 1024 * 1024


def vm(pid: int, key: str) -> float:
    """A /proc/PID/status figure (VmHWM, VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


def start(checkpoint: Path, port: int, extra: list[str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ecgcnn", "serve", "--checkpoint", str(checkpoint), "--host",
           "127.0.0.1", "--port", str(port), "--workers", "1", "--max-body-mb", "8",
           "--log-level", "warning", *extra]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECGCNN_")}
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ecgcnn serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"ecgcnn serve not ready after 180 s:\n{log.read_text()}")


async def burst(url: str, body: bytes, n: int) -> list[int | str]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:

        async def one() -> int | str:
            try:
                r = await client.post(url + "/v1/predict", content=body,
                                      headers={"content-type": "application/json"})  # fmt: skip
            except httpx.HTTPError as exc:  # e.g. the connection closed under the upload
                return type(exc).__name__
            return r.status_code if r.status_code != 408 else "408 body_timeout"

        return list(await asyncio.gather(*(one() for _ in range(n))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--body-mb", type=float, default=8.0, help="at most this big (1e6 bytes)")
    parser.add_argument("--max-inflight-mb", type=float, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not args.checkpoint.is_file():
        raise SystemExit(f"{args.checkpoint}: no such checkpoint")
    rng = np.random.default_rng(0)
    signal = np.round(rng.normal(0, 0.3, (12, int(args.seconds * 1000))), 4)
    body = json.dumps({"signal": signal.tolist(), "fs": 1000}).encode()
    if len(body) > args.body_mb * 1e6:  # fewer seconds, the same values: just inside the limit
        keep = int(signal.shape[1] * args.body_mb * 1e6 / len(body) * 0.995)
        body = json.dumps({"signal": signal[:, :keep].tolist(), "fs": 1000}).encode()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    extra = ["--max-inflight-mb", str(args.max_inflight_mb)] if args.max_inflight_mb else []
    log = Path(f"/tmp/bench_serve_burst-{port}.log")
    proc = start(args.checkpoint, port, extra, log)
    try:
        idle = vm(proc.pid, "VmRSS")
        statuses: Counter[int | str] = Counter()
        start_t = time.perf_counter()
        for _ in range(args.rounds):
            statuses.update(asyncio.run(burst(f"http://127.0.0.1:{port}", body, args.concurrency)))
        wall = time.perf_counter() - start_t
        peak, after = vm(proc.pid, "VmHWM"), vm(proc.pid, "VmRSS")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {
        "checkpoint": str(args.checkpoint), "body_mb": round(len(body) / 1e6, 2),
        "concurrency": args.concurrency, "rounds": args.rounds,
        "max_inflight_mb": args.max_inflight_mb, "statuses": {str(k): v for k, v in statuses.items()},
        "wall_s": round(wall, 1), "rss_idle_mib": round(idle, 1), "rss_peak_mib": round(peak, 1),
        "rss_after_mib": round(after, 1), "ecgcnn": __version__, "python": platform.python_version(),
        "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
