"""MFER figures for BENCHMARKS.md: what small hostile files cost ecgdatakit's decoder, what they cost
`read_recording` (which walks every definition first, `ecgcnn.mfer.check_mfer`), and what the walk
adds to the reading of well-formed files.

    python benchmarks/bench_mfer.py --out benchmarks/results/mfer.json
    python benchmarks/bench_mfer.py --quick     # small cases only, the decoder not run alone

Each file is written to a temporary folder and read in a child process of its own, with an address
space limit (--memory-gib) and a timeout; the child reports its wall time and peak resident memory
(with Python's start-up and imports included, about 350 MiB with torch).
"""

from __future__ import annotations

import argparse
import json
import platform
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ecgcnn import __version__
from ecgcnn.synthetic import synthesize_ecg

FS = 500
LEAD_CODES = {"I": 1, "II": 2, "V1": 3, "V2": 4, "V3": 5, "V4": 6, "V5": 7, "V6": 8,
              "III": 61, "AVR": 62, "AVL": 63, "AVF": 64}  # fmt: skip
LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")

CHILD = """
import json, resource, sys, time, warnings
from pathlib import Path
path, how = Path(sys.argv[1]), sys.argv[2]
limit = int(float(sys.argv[3]) * 2**30)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from ecgcnn.recording import read_recording
from ecgcnn.mfer import check_mfer
from ecgdatakit.parsing.parsers.mfer import MFERParser
start = time.perf_counter()
try:
    if how == "decoder":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            record = MFERParser().parse(path)
        outcome = f"decoded: {len(record.leads)} leads of {len(record.leads[0].samples):,} samples"
    elif how == "walk":
        check_mfer(path.read_bytes(), path.name)
        outcome = "walked"
    else:
        rec = read_recording(path)
        outcome = f"read: {rec.signal.shape[1]} leads of {rec.signal.shape[0]:,} samples"
except MemoryError:
    outcome = "MemoryError"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {str(exc)[:160]}"
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mib": peak, "outcome": outcome}))
"""


def tlv(tag: int, value: bytes, channel: int | None = None) -> bytes:
    """One definition: tag (MWF_ATT with its channel number), length (short or long form), value."""
    head = bytes([tag]) if channel is None else bytes([tag, channel])
    n = len(value)
    if n < 0x80:
        return head + bytes([n]) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return head + bytes([0x80 | len(size)]) + size + value


def scale(unit: int, exponent: int, mantissa: int) -> bytes:
    return bytes([unit]) + struct.pack(">bi", exponent, mantissa)


def head(channels: int = 1, block: int = 1) -> bytes:
    """Preamble, byte order, 500 Hz, 2.5 µV a count, block length, channels, one lead code each."""
    out = tlv(0x40, b"MFR ".ljust(32)) + tlv(0x01, b"\x00")
    out += tlv(0x0B, scale(0, 0, FS)) + tlv(0x0C, scale(0, -7, 25))
    out += tlv(0x04, struct.pack(">I", block)) + tlv(0x05, bytes([channels])) + tlv(0x0A, b"\x00")
    for k in range(channels):
        out += tlv(0x3F, tlv(0x09, bytes([LEAD_CODES[LEADS[k]]])), channel=k)
    return out


def ecg_frames(seconds: int, frame_s: int) -> bytes:
    """A 12-lead ECG of ``seconds`` in frames of ``frame_s`` seconds (int16, leads one after another
    in each frame), as a long-term recorder writes it."""
    rng = np.random.default_rng(0)
    beat = synthesize_ecg(["NORM"], fs=FS, duration_s=10.0, rng=rng)  # mV, repeated
    counts = np.round(beat / 0.0025)
    n = FS * frame_s
    reps = -(-n // len(counts))
    frame = np.concatenate([counts] * reps)[:n].T.astype(">i2").tobytes()
    return head(12, block=n) + tlv(0x1E, frame) * (seconds // frame_s) + b"\x80\x00"


def cases(quick: bool) -> dict[str, bytes]:
    """The review's hostile files (tenth session) and well-formed ones."""
    nested = b"\x67\x80" * 900 + b"\x16\x00" * 10_000 + b"\x00\x00" * 900
    chn = tlv(0x05, (1_000_000).to_bytes(4, "big"))
    out = {
        "200 one-byte frames, each declaring a 1 MiB sequence":
            head(block=1 << 19) + tlv(0x1E, b"\x00") * 200 + b"\x80\x00",
        "1,000,000 channels inside an MWF_SET":
            head() + tlv(0x67, chn) + tlv(0x1E, bytes(1_000_000)) + b"\x80\x00",
        "indefinite-length sets 900 deep around 20 KB": head() + nested + tlv(0x1E, bytes(1000)) + b"\x80\x00",
        "12-lead ECG, 10 s, one frame": ecg_frames(10, 10),
    }  # fmt: skip
    if not quick:
        frame = tlv(0x1E, np.zeros(12, ">i2").tobytes())
        out["200,000 one-sample 12-lead frames"] = head(12) + frame * 200_000 + b"\x80\x00"
        out["8 MiB of events"] = head() + b"\x41\x02\x00\x01" * (2 << 20) + tlv(0x1E, bytes(1000))
        out["a 1 MB note in the character set 'punycode'"] = (
            head() + tlv(0x03, b"punycode") + tlv(0x16, b"-" + b"a" * 1_000_000)
            + tlv(0x1E, bytes(1000)) + b"\x80\x00"
        )  # fmt: skip
        stairs = b"".join(tlv(0x3F, tlv(0x06, bytes([c + 1])), channel=c) for c in range(64))
        out["64 channels, each its own sequence count, 10,000 frames"] = (
            head(1) + tlv(0x05, b"\x40") + stairs + tlv(0x1E, bytes(64)) * 10_000 + b"\x80\x00"
        )
        out["12-lead ECG, 1 hour in 10 s frames"] = ecg_frames(3600, 10)
    return out


def run_child(path: Path, how: str, memory_gib: float, timeout: float) -> dict:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), how, str(memory_gib)],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "peak_mib": None, "outcome": f"killed after {timeout:g} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode or not lines:
        return {"seconds": None, "peak_mib": None, "outcome": f"exit {proc.returncode}"}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small cases, no decoder alone")
    parser.add_argument("--memory-gib", type=float, default=6.0, help="each child's address space")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds each child may run")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    ways = ("read_recording", "walk") if args.quick else ("decoder", "read_recording", "walk")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in cases(args.quick).items():
            path = Path(tmp) / "case.mwf"
            path.write_bytes(data)
            row = {"file": name, "bytes": len(data)}
            for how in ways:
                row[how] = run_child(path, how, args.memory_gib, args.timeout)
                r = row[how]
                secs = "-" if r["seconds"] is None else f"{r['seconds']:.3f} s"
                peak = "-" if r["peak_mib"] is None else f"{r['peak_mib']:,.0f} MiB"
                print(f"{name} ({len(data):,} bytes) {how}: {secs}, peak {peak}: {r['outcome']}")
            results.append(row)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"ecgcnn": __version__, "python": platform.python_version(),
                "machine": platform.processor() or platform.machine()}  # fmt: skip
        args.out.write_text(json.dumps({"meta": meta, "cases": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
