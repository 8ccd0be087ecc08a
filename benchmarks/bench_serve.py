"""Load figures for `ecgcnn serve`: throughput, latency, errors and server memory under concurrent POSTs.

    python benchmarks/bench_serve.py --checkpoint runs/bench-dev/superdiagnostic/cnn1d/benchmark/checkpoint.pt \\
        --requests 5000 --concurrency 32 --out benchmarks/results/serve.json
    python benchmarks/bench_serve.py --checkpoint runs/bench-dev/superdiagnostic/cnn1d/benchmark/checkpoint.pt \\
        --requests 5000 --concurrency 32 --fault-mix --out benchmarks/results/serve-faults.json
    python benchmarks/bench_serve.py --checkpoint runs/bench-dev/superdiagnostic/cnn1d/benchmark/checkpoint.pt \\
        --requests 5000 --concurrency 32 --workers 2 --threads 1 --out benchmarks/results/serve-2workers.json
    python benchmarks/bench_serve.py --url http://127.0.0.1:8000 --server-pid 1234 --requests 5000

A real uvicorn is started as a subprocess (`python -m ecgcnn serve ...` on a free loopback port) unless
--url names one already running (its memory is sampled only with --server-pid). Requests are
POST /v1/predict with a JSON body, rotating over bundled examples fetched from GET /v1/examples/NAME
(12 leads x 10 s at 100 Hz, about 100 kB each) and serialised once, so the client spends its CPU on
HTTP, not on JSON. An untimed warm-up comes first. The client shares the machine with the server:
on a small machine its CPU time (reported) is part of the picture.

Memory is the VmRSS of the server process and all its descendants (uvicorn workers), summed, sampled
every second; the slope is a least-squares fit of RSS against completed requests (MiB per 1,000).

--fault-mix interleaves one bad request after every --fault-every good ones, rotating over malformed
JSON, wrong shapes, NaN, unknown leads, too short/long, wrong content type, oversized bodies
(announced with Expect: 100-continue, sent whole, and chunked), a header-only WFDB upload, a
disconnect mid-upload and a slow body.
Each must get its expected status and error code; good requests must all get 200 with a probability
for every class. The script exits 1 otherwise (the JSON is written either way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ecgcnn import __version__
from ecgcnn.atomic import write_json

DEFAULT_CHECKPOINT = Path("runs/bench-dev/superdiagnostic/cnn1d/benchmark/checkpoint.pt")
EXAMPLE_NAMES = ("normal", "inferior-mi", "lvh", "atrial-fibrillation")
MiB = 1024 * 1024
JSON = {"content-type": "application/json"}
TEXT = {"content-type": "text/plain"}


# --- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen, str, list[str]]:
    """`ecgcnn serve` on a free loopback port; returns once every worker answers /readyz."""
    port = args.port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "ecgcnn",
        "serve",
        "--checkpoint",
        str(args.checkpoint),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(args.workers),
        "--threads",
        str(args.threads),
        "--log-level",
        "warning",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECGCNN_")}
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    streak = 0  # several workers share the socket: ask often enough to reach each of them
    while streak < 10 * args.workers:
        if proc.poll() is not None:
            raise SystemExit(f"ecgcnn serve exited with {proc.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"ecgcnn serve not ready after 180 s:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as r:
                streak = streak + 1 if r.status == 200 else 0
        except OSError:
            streak = 0
            time.sleep(0.2)
    return proc, url, cmd


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def process_tree(root: int) -> list[int]:
    """``root`` and every descendant, from the parent ids in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def rss_mib(pids: list[int]) -> float:
    total_kib = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
                    break
        except OSError:
            continue
    return total_kib / 1024


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (utime, stime in /proc/PID/stat)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for pkg in ("torch", "uvicorn", "fastapi", "starlette", "httpx", "h11", "uvloop", "httptools"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ecgcnn": __version__,
        "versions": versions,
    }


# --- requests -------------------------------------------------------------------------------------


@dataclass
class Fault:
    """A bad request and what the server must answer: status and error code (None: no answer)."""

    name: str
    status: int | None
    code: str | None
    send: Callable[[httpx.AsyncClient, str], Any]


def _post(body: bytes, headers: dict[str, str] | None = None) -> Callable:
    async def send(client: httpx.AsyncClient, url: str) -> httpx.Response:
        return await client.post(url + "/v1/predict", content=body, headers=headers or JSON)

    return send


def _post_files(files: list[tuple[str, tuple[str, bytes]]]) -> Callable:
    async def send(client: httpx.AsyncClient, url: str) -> httpx.Response:
        return await client.post(url + "/v1/predict", files=files)

    return send


def _raw_head(url: str, extra: str) -> tuple[str, int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    head = f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}\r\n"
    return host, int(port), head.encode()


async def _read_status(reader: asyncio.StreamReader) -> int:
    line = await asyncio.wait_for(reader.readline(), 30)
    return int(line.split()[1]) if line.startswith(b"HTTP/") else 0


def _disconnect_mid_upload(declared: int) -> Callable:
    async def send(client: httpx.AsyncClient, url: str) -> None:
        host, port, head = _raw_head(url, f"Content-Length: {declared}\r\n")
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(head + b"0" * (declared // 2))
        await writer.drain()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    return send


@contextlib.asynccontextmanager
async def _raw_request(url: str, extra: str):  # -> (reader, writer), the head already sent
    """A POST /v1/predict on a raw socket: the head written, the body left to the caller."""
    host, port, head = _raw_head(url, extra)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head)
        await writer.drain()
        yield reader, writer
    finally:
        writer.close()


def _slow_body(body: bytes, pieces: int = 10, pause_s: float = 0.05) -> Callable:
    async def send(client: httpx.AsyncClient, url: str) -> int:
        async with _raw_request(url, f"Content-Length: {len(body)}\r\n") as (reader, writer):
            step = -(-len(body) // pieces)
            for i in range(0, len(body), step):
                writer.write(body[i : i + step])
                await writer.drain()
                await asyncio.sleep(pause_s)
            return await _read_status(reader)

    return send


def _expect_continue_oversized(limit: int) -> Callable:
    async def send(client: httpx.AsyncClient, url: str) -> int:
        extra = f"Content-Length: {limit + 1}\r\nExpect: 100-continue\r\n"
        async with _raw_request(url, extra) as (reader, _):
            return await _read_status(reader)

    return send


def _chunked_oversize(limit: int) -> Callable:
    async def send(client: httpx.AsyncClient, url: str) -> int:
        chunk = b"0" * 65536
        async with _raw_request(url, "Transfer-Encoding: chunked\r\n") as (reader, writer):
            sent = 0
            read = asyncio.ensure_future(_read_status(reader))
            # stop sending once the answer starts: more bytes unread by the server would make its
            # close a reset, which may discard the answer before it is read
            with contextlib.suppress(ConnectionError):  # the server may close as it answers
                while sent <= limit + len(chunk) and not read.done():
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
                    sent += len(chunk)
                    await asyncio.sleep(0.002)
            return await read

    return send


def faults(example: dict[str, Any], limits: dict[str, Any]) -> list[Fault]:
    """The bad requests of --fault-mix, built from a good body and the server's limits."""

    def body(**change: Any) -> bytes:
        return json.dumps({**example, **change}, separators=(",", ":")).encode()

    signal = example["signal"]
    rows, fs = len(signal), example["fs"]
    nan_body = body().replace(json.dumps(signal[2][7]).encode(), b"NaN", 1)
    long_n = int((limits["max_duration_s"] + 80) * fs)
    too_long = body(signal=[[0] * long_n for _ in range(rows)])
    leads = example["leads"]
    header_only = [("files", ("rec.hea", b"rec 1 100 1000\nrec.dat 16 1000 16 0 0 0 0 I\n"))]
    limit = limits["max_body_bytes"]
    ragged = [r[:-5] if i == 3 else r for i, r in enumerate(signal)]
    bomb, bomb_bare = _mat_bomb(leads, with_length=True), _mat_bomb(leads, with_length=False)
    return [
        Fault("malformed-json", 400, "malformed_json", _post(b'{"signal": [[1, 2')),
        Fault("missing-lead-row", 422, "invalid_shape", _post(body(signal=signal[:-1]))),
        Fault("ragged-rows", 422, "invalid_shape", _post(body(signal=ragged))),
        Fault("nan", 422, "not_finite", _post(nan_body)),
        Fault("unknown-lead", 422, "unknown_lead", _post(body(leads=[*leads[:-1], "XYZ"]))),
        Fault("too-short-1s", 422, "too_short", _post(body(signal=[r[: int(fs)] for r in signal]))),
        Fault("too-long", 422, "too_long", _post(too_long)),
        Fault("wrong-content-type", 415, "unsupported_media_type", _post(body(), TEXT)),
        # a client that waits for "100 Continue" never sends the body: the 413 comes at once
        Fault("oversized-expect-continue", 413, None, _expect_continue_oversized(limit)),
        # one that sends it all (httpx does): the 413 must still arrive, not a reset
        Fault("oversized-whole-body", 413, "body_too_large", _post(b" " * (limit + 1))),
        Fault("oversized-chunked", 413, None, _chunked_oversize(limit)),
        Fault("header-only-upload", 422, "invalid_record", _post_files(header_only)),
        # a compressed CinC .mat of 20,000 s in about 47 KB: refused by its length, before decoding
        Fault("compressed-mat-20000s", 422, "too_long", _post_files(bomb)),
        Fault("compressed-mat-20000s-no-header-length", 422, "too_long", _post_files(bomb_bare)),
        Fault("disconnect-mid-upload", None, None, _disconnect_mid_upload(1_000_000)),
        Fault("slow-body", 422, None, _slow_body(body(signal=[[0.0, 0.0]]))),
    ]


def _mat_bomb(leads: list[str], with_length: bool) -> list[tuple[str, tuple[str, bytes]]]:
    """A WFDB header and a zlib-compressed MATLAB 'val' of 12 x 2,000,000 int16 (20,000 s at
    100 Hz, 48 MB once inflated); the header gives the length or, as WFDB allows, leaves it out."""
    import io

    import numpy as np
    import scipy.io

    samples = 2_000_000
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"val": np.zeros((len(leads), samples), np.int16)}, do_compression=True)
    head = f"bomb {len(leads)} 100" + (f" {samples}" if with_length else "")
    lines = [head] + [f"bomb.mat 16+24 1000/mV 16 0 0 0 0 {lead}" for lead in leads]
    hea = ("\n".join(lines) + "\n").encode()
    return [("files", ("bomb.hea", hea)), ("files", ("bomb.mat", buf.getvalue()))]


def schedule(n: int, fault_list: list[Fault], every: int) -> list[Fault | int]:
    """Good request k as the int k (which example), a bad one after every ``every`` good ones."""
    out: list[Fault | int] = []
    for i in range(n):
        out.append(i)
        if fault_list and (i + 1) % every == 0:
            out.append(fault_list[(i // every) % len(fault_list)])
    return out


# --- the load -------------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies: list[float]
    statuses: Counter
    invalid: int = 0  # 200 without a probability for every class
    done: int = 0
    fault_results: dict[str, Counter] | None = None


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


async def check_fault(fault: Fault, client: httpx.AsyncClient, url: str, tally: Tally) -> None:
    assert tally.fault_results is not None
    try:
        got = await fault.send(client, url)
    except (httpx.HTTPError, OSError, asyncio.TimeoutError) as exc:
        tally.fault_results[fault.name][f"exception:{type(exc).__name__}"] += 1
        return
    if isinstance(got, httpx.Response):
        ok = got.status_code == fault.status
        if ok and fault.code is not None:
            try:
                ok = got.json()["error"]["code"] == fault.code and b"Traceback" not in got.content
            except (ValueError, KeyError, TypeError):
                ok = False
        outcome = "expected" if ok else f"unexpected:{got.status_code}"
    else:  # raw socket faults: a status, or None where no answer is due
        outcome = "expected" if got == fault.status else f"unexpected:{got}"
    tally.fault_results[fault.name][outcome] += 1


async def load(
    url: str,
    bodies: list[bytes],
    classes: set[str],
    plan: list[Fault | int],
    concurrency: int,
    tally: Tally,
) -> float:
    """Send the plan with ``concurrency`` clients; returns the wall time in seconds."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(60.0)
    queue = iter(plan)
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:

        async def one() -> None:
            for item in queue:
                if isinstance(item, Fault):
                    await check_fault(item, client, url, tally)
                    continue
                start = time.perf_counter()
                try:
                    r = await client.post(
                        url + "/v1/predict", content=bodies[item % len(bodies)], headers=JSON
                    )
                except httpx.HTTPError as exc:
                    tally.statuses[f"exception:{type(exc).__name__}"] += 1
                    tally.done += 1
                    continue
                tally.latencies.append(time.perf_counter() - start)
                tally.statuses[str(r.status_code)] += 1
                if r.status_code == 200 and set(r.json().get("probabilities", {})) != classes:
                    tally.invalid += 1
                tally.done += 1

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        return time.perf_counter() - start


async def sample_memory(pid: int, tally: Tally, t0: float, samples: list[dict[str, Any]]) -> None:
    while True:
        pids = process_tree(pid)
        samples.append(
            {
                "t_s": round(time.perf_counter() - t0, 2),
                "requests": tally.done,
                "rss_mib": round(rss_mib(pids), 1),
                "processes": len(pids),
            }
        )
        await asyncio.sleep(1.0)


def slope_per_1000(samples: list[dict[str, Any]]) -> float | None:
    """Least-squares MiB of RSS per 1,000 completed requests."""
    xs = [s["requests"] for s in samples]
    ys = [s["rss_mib"] for s in samples]
    if len(samples) < 3 or max(xs) == min(xs):
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return round(sxy / sxx * 1000, 3)


async def run(args: argparse.Namespace, url: str, pid: int | None) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as c:
        model = (await c.get(url + "/v1/model")).raise_for_status().json()
        examples = [
            (await c.get(f"{url}/v1/examples/{n}")).raise_for_status().json() for n in EXAMPLE_NAMES
        ]
    bodies = [json.dumps(e, separators=(",", ":")).encode() for e in examples]
    classes = set(model["classes"])
    fault_list = faults(examples[0], model["limits"]) if args.fault_mix else []

    warm = Tally([], Counter())
    await load(url, bodies, classes, schedule(args.warmup, [], 1), args.concurrency, warm)

    tally = Tally([], Counter(), fault_results={f.name: Counter() for f in fault_list})
    plan = schedule(args.requests, fault_list, args.fault_every)
    samples: list[dict[str, Any]] = []
    pids_before = process_tree(pid) if pid else []
    cpu_before = cpu_seconds(pids_before) if pid else None
    client_before = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    sampler = asyncio.create_task(sample_memory(pid, tally, t0, samples)) if pid else None
    wall = await load(url, bodies, classes, plan, args.concurrency, tally)
    if sampler is not None:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        pids = process_tree(pid)
        samples.append(
            {
                "t_s": round(time.perf_counter() - t0, 2),
                "requests": tally.done,
                "rss_mib": round(rss_mib(pids), 1),
                "processes": len(pids),
            }
        )
    client_after = resource.getrusage(resource.RUSAGE_SELF)

    ms = sorted(x * 1000 for x in tally.latencies)
    good_errors = {k: v for k, v in tally.statuses.items() if k != "200"}
    fault_summary = {
        name: {
            "expected": c["expected"],
            "unexpected": {k: v for k, v in c.items() if k != "expected"},
        }
        for name, c in (tally.fault_results or {}).items()
    }
    memory = None
    if samples:
        rss = [s["rss_mib"] for s in samples]
        memory = {
            "processes": samples[-1]["processes"],
            "rss_start_mib": rss[0],
            "rss_end_mib": rss[-1],
            "rss_peak_mib": max(rss),
            "rss_growth_mib": round(rss[-1] - rss[0], 1),
            "slope_mib_per_1000_requests": slope_per_1000(samples),
            # the first half carries allocator and cache warm-up; a leak shows in both halves
            "slope_second_half_mib_per_1000_requests": slope_per_1000(samples[len(samples) // 2 :]),
            "samples": samples,
        }
    return {
        "model": {
            "id": model["id"],
            "name": model["name"],
            "task": model["task"],
            "classes": model["classes"],
            "window": model["window"],
            "limits": model["limits"],
        },
        "body_bytes": [len(b) for b in bodies],
        "warmup": {"requests": args.warmup, "statuses": dict(warm.statuses)},
        "results": {
            "good_requests": args.requests,
            "fault_requests": sum(isinstance(x, Fault) for x in plan),
            "seconds": round(wall, 3),
            "throughput_req_s": round(len(plan) / wall, 1),
            "good_throughput_req_s": round(args.requests / wall, 1),
            "latency_ms": {
                "p50": round(percentile(ms, 50), 2),
                "p90": round(percentile(ms, 90), 2),
                "p99": round(percentile(ms, 99), 2),
                "max": round(ms[-1], 2) if ms else None,
                "mean": round(sum(ms) / len(ms), 2) if ms else None,
            },
            "statuses": dict(tally.statuses),
            "errors_by_status": good_errors,
            "errors": sum(good_errors.values()),
            "responses_missing_classes": tally.invalid,
        },
        "faults": fault_summary or None,
        "memory": memory,
        "cpu_seconds": {
            "server": round(cpu_seconds(process_tree(pid)) - cpu_before, 2) if pid else None,
            "client": round(
                client_after.ru_utime
                + client_after.ru_stime
                - client_before.ru_utime
                - client_before.ru_stime,
                2,
            ),
        },
    }


def markdown(report: dict[str, Any]) -> str:
    r, cfg, m = report["results"], report["config"], report["machine"]
    lat = r["latency_ms"]
    server = (
        f"the server at {cfg['url']}"
        if cfg["url"]
        else f"{cfg['workers']} worker(s) x {cfg['threads']} inference thread(s)"
    )
    lines = [
        f"## ecgcnn serve: {r['good_requests']:,} POST /v1/predict at concurrency "
        f"{cfg['concurrency']} ({server})",
        "",
        f"{m['cpu_model']}, {m['cpu_count']} cores, torch {m['versions']['torch']}, "
        f"load average at start {m['load_average_at_start'][0]}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| throughput | {r['throughput_req_s']} req/s ({r['seconds']} s"
        + (
            f"; good requests alone {r['good_throughput_req_s']} req/s"
            if r["fault_requests"]
            else ""
        )
        + ") |",
        f"| latency p50 / p90 / p99 / max | {lat['p50']} / {lat['p90']} / {lat['p99']} / "
        f"{lat['max']} ms |",
        f"| errors (good requests) | {r['errors']} {r['errors_by_status'] or ''} |",
        f"| 200s missing a class | {r['responses_missing_classes']} |",
        f"| CPU s: server / client | {report['cpu_seconds']['server']} / "
        f"{report['cpu_seconds']['client']} |",
    ]
    mem = report["memory"]
    if mem:
        lines += [
            f"| server RSS start / end / peak | {mem['rss_start_mib']} / {mem['rss_end_mib']} / "
            f"{mem['rss_peak_mib']} MiB ({mem['processes']} processes) |",
            f"| RSS slope: whole run / second half | {mem['slope_mib_per_1000_requests']} / "
            f"{mem['slope_second_half_mib_per_1000_requests']} MiB per 1,000 requests |",
        ]
    if report["faults"]:
        lines += ["", "| fault | expected | unexpected |", "|---|---|---|"]
        for name, f in report["faults"].items():
            lines.append(f"| {name} | {f['expected']} | {f['unexpected'] or ''} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help=f"checkpoint to serve (default: {DEFAULT_CHECKPOINT} if present)",
    )
    ap.add_argument(
        "--url", default=None, help="an already running server, e.g. http://127.0.0.1:8000"
    )
    ap.add_argument(
        "--server-pid",
        type=int,
        default=None,
        help="with --url: the server's process id, to sample its memory",
    )
    ap.add_argument("--requests", type=int, default=5000, help="good requests measured")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--warmup", type=int, default=200, help="untimed requests first")
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    ap.add_argument("--threads", type=int, default=2, help="inference threads per worker")
    ap.add_argument(
        "--port", type=int, default=None, help="port of the started server (default: free)"
    )
    ap.add_argument("--fault-mix", action="store_true", help="interleave bad requests")
    ap.add_argument("--fault-every", type=int, default=10, help="good requests per bad one")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/serve.json"))
    args = ap.parse_args()
    if min(args.requests, args.concurrency, args.workers, args.threads, args.fault_every) < 1:
        raise SystemExit("--requests, --concurrency, --workers, --threads, --fault-every: >= 1")

    proc, cmd = None, None
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        if args.url:
            url, pid = args.url.rstrip("/"), args.server_pid
        else:
            args.checkpoint = args.checkpoint or DEFAULT_CHECKPOINT
            if not args.checkpoint.is_file():
                raise SystemExit(f"no checkpoint at {args.checkpoint}; give --checkpoint or --url")
            log = Path(tmp) / "serve.log"
            started = time.perf_counter()
            proc, url, cmd = start_server(args, log)
            print(f"server ready in {time.perf_counter() - started:.1f} s: {url}", file=sys.stderr)
            pid = proc.pid
        try:
            report = {
                "benchmark": "serve",
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "config": {
                    "url": args.url,
                    "server_command": cmd,
                    "checkpoint": str(args.checkpoint) if args.checkpoint else None,
                    "requests": args.requests,
                    "concurrency": args.concurrency,
                    "warmup": args.warmup,
                    "workers": args.workers if not args.url else None,
                    "threads": args.threads if not args.url else None,
                    "fault_mix": args.fault_mix,
                    "fault_every": args.fault_every if args.fault_mix else None,
                    "examples": list(EXAMPLE_NAMES),
                },
                "machine": machine(),
            }
            report.update(asyncio.run(run(args, url, pid)))
            server_log = log.read_text(errors="replace") if proc else ""
        finally:
            if proc is not None:
                stop_server(proc)
    report["server_log_tracebacks"] = server_log.count("Traceback") if proc else None
    write_json(args.out, report)
    print(markdown(report))
    print(f"\nwrote {args.out}", file=sys.stderr)
    faults_bad = sum(sum(f["unexpected"].values()) for f in (report["faults"] or {}).values())
    r = report["results"]
    if (
        r["errors"]
        or r["responses_missing_classes"]
        or faults_bad
        or report["server_log_tracebacks"]
    ):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
