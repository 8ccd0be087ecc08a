"""WFDB records whose signal file is MATLAB ``.mat``, as the PhysioNet/CinC challenges release them.

The header names ``A0001.mat`` in format ``16+24``: 16-bit samples after a 24-byte MATLAB v4
header (a matrix called ``val``, leads x samples), which wfdb reads as plain WFDB format 16. A file
re-saved by MATLAB (v7, compressed) or by scipy (v5) keeps its name and its header but not that
layout, and would be read as noise. :func:`later_matlab` tells such a file; :func:`read_later_matlab`
reads its ``val`` with scipy and applies the header's gains, as wfdb would have.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from ecgcnn.errors import RecordError

# A MATLAB v4 matrix header: type (MOPT), rows, columns, imaginary flag, name length.
_V4_INT16 = 30  # MOPT: little-endian (M 0), int16 (P 3), full matrix (T 0)
_FMT = re.compile(r"(\d+)(?:x\d+)?(?::\d+)?(?:\+(\d+))?$")  # WFDB: format[xspf][:skew][+offset]
MAX_MAT_BYTES = 200 * 2**20  # what `val` may hold once loaded (CinC records are a few hundred KiB)


def later_matlab(name: str, lines: list[list[str]]) -> Path | None:
    """The ``.mat`` signal file of record ``name`` (its header's ``lines``, split, comments left
    out) when it is not the MATLAB v4 int16 matrix the header's byte offset assumes (MATLAB v5/v7,
    a big-endian or non-int16 v4 matrix), else None: wfdb reads it, or says what is wrong."""
    mats = [parts for parts in lines[1:] if len(parts) >= 2 and parts[0].lower().endswith(".mat")]
    if not mats:
        return None
    path = Path(name).parent / mats[0][0]
    try:
        with open(path, "rb") as f:
            head = f.read(128)
    except OSError:
        return None
    if head.startswith(b"MATLAB"):  # v5, v7 and v7.3 begin with a 128-byte text header
        return path
    v4 = _v4_header(head)
    if v4 is None:
        return None  # not MATLAB: read as the header says
    fmt = _FMT.match(mats[0][1])
    offset = int(fmt.group(2) or 0) if fmt else -1
    n_sig = lines[0][1] if len(lines[0]) > 1 else ""
    rows = int(n_sig) if n_sig.isdigit() else -1  # a matrix stored samples x leads is not format 16
    return None if v4 == (_V4_INT16, offset, rows) else path


def _v4_header(head: bytes) -> tuple[int, int, int] | None:
    """(type code, bytes before the data, rows) of a MATLAB v4 matrix header, little- or
    big-endian."""
    for order in "<>":
        if len(head) < 20:
            return None
        mopt, rows, cols, imagf, namlen = struct.unpack_from(f"{order}5i", head)
        m, o, p, t = mopt // 1000, mopt // 100 % 10, mopt // 10 % 10, mopt % 10
        named = 0 < namlen <= 64 and len(head) >= 20 + namlen and head[19 + namlen] == 0
        if (0 <= mopt < 5000 and m <= 4 and o == 0 and p <= 5 and t <= 2 and rows >= 0
                and cols >= 0 and imagf in (0, 1) and named):  # fmt: skip
            return (mopt if order == "<" else -mopt), 20 + namlen, rows
    return None


NUMERIC_CLASSES = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32",
                   "int64", "uint64"}  # fmt: skip


def _check_inflation(path: Path, name: str, limit: int) -> None:
    """Refuse a MATLAB v5/v7 file whose compressed elements inflate to more than ``limit`` bytes
    in all (its matrix header can declare a small 'val' over gigabytes of data), counting the
    output a MiB at a time without keeping it."""
    import zlib

    data = path.read_bytes()  # bounded: a record file (and an upload) is size-checked
    if not data.startswith(b"MATLAB") or data.startswith(b"MATLAB 7.3") or len(data) < 128:
        return
    order = "<" if data[126:128] == b"IM" else ">"
    pos, total = 128, 0
    while pos + 8 <= len(data):
        kind, size = struct.unpack_from(f"{order}II", data, pos)
        pos += 8
        if kind == 15:  # miCOMPRESSED
            inflate = zlib.decompressobj()
            chunk = data[pos : pos + size]
            while chunk and not inflate.eof:
                total += len(inflate.decompress(chunk, 2**20))
                chunk = inflate.unconsumed_tail
                if total > limit:
                    raise RecordError(
                        name, f"{path.name} inflates to more than {limit:,} bytes (a CinC "
                        "record holds a few hundred KiB)"
                    )  # fmt: skip
        pos += size + (-size % 8 if kind != 15 else 0)


def mat_samples(name: str, path: Path) -> int | None:
    """Samples per lead of the 'val' matrix in ``path`` (leads x samples), from its matrix header,
    without loading it: for a header that does not give the record's length. None if unknown."""
    import scipy.io

    _check_inflation(path, name, MAX_MAT_BYTES)  # scipy inflates a compressed element to look in
    shapes = {v[0]: v[1] for v in scipy.io.whosmat(path)}
    shape = shapes.get("val")
    return int(shape[1]) if shape is not None and len(shape) == 2 else None


def read_later_matlab(
    name: str, path: Path, sampfrom: int = 0, sampto: int | None = None
) -> tuple[np.ndarray, dict]:
    """The physical signal (samples, leads) of a record whose ``val`` is in any MATLAB format
    scipy reads (v4, v5, v7), with the header's gains and baselines, and wfdb's header fields."""
    import scipy.io
    import wfdb

    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"MATLAB 7.3"):
        raise RecordError(
            name, f"{path.name} is a MATLAB v7.3 (HDF5) file: save 'val' as v4 (-v4) or v7"
        )
    header = wfdb.rdheader(name)
    n_sig = header.n_sig or 0
    if any(not str(f).lower().endswith(".mat") for f in header.file_name or []):
        raise RecordError(name, "signals split between a .mat file and other files")
    _check_inflation(path, name, MAX_MAT_BYTES)  # before scipy, which inflates to look inside
    try:
        found = {v[0]: (v[1], v[2]) for v in scipy.io.whosmat(path)}
        if "val" not in found:
            has = ", ".join(found) or "nothing"
            raise RecordError(name, f"{path.name} holds no 'val' matrix (has {has})")
        shape, kind = found["val"]
        if kind not in NUMERIC_CLASSES:
            raise RecordError(name, f"{path.name}: 'val' is {kind}, not numbers")
        if len(shape) != 2 or int(np.prod(shape)) * 8 > MAX_MAT_BYTES:
            raise RecordError(name, f"{path.name}: 'val' is {' x '.join(map(str, shape))}")
        val = scipy.io.loadmat(path, variable_names=["val"])["val"]
    except RecordError:
        raise
    except Exception as exc:  # scipy raises many types on a damaged file
        raise RecordError(name, f"{path.name}: not a readable MATLAB file ({exc})") from None
    if val.dtype.kind not in "iuf":
        raise RecordError(name, f"{path.name}: 'val' is {kind}, not numbers")
    if val.shape[0] != n_sig:
        raise RecordError(
            name,
            f"{path.name} holds {val.shape[0]} x {val.shape[1]} values, the header {n_sig} leads",
        )
    if header.sig_len and val.shape[1] != header.sig_len:
        raise RecordError(
            name,
            f"{path.name} holds {val.shape[1]} samples per lead, the header says {header.sig_len}",
        )
    digital = val[:, sampfrom:sampto].T.astype(np.float64)
    for i, fmt in enumerate(header.fmt or []):
        if str(fmt) == "16":  # the header's format: -32768 is a missing sample, as wfdb reads it
            digital[digital[:, i] == -32768, i] = np.nan
    gain = np.array([g or 200.0 for g in header.adc_gain], dtype=np.float64)  # 0: wfdb's default
    baseline = np.array(header.baseline, dtype=np.float64)
    fields = {"fs": header.fs, "sig_len": header.sig_len, "sig_name": header.sig_name,
              "units": header.units}  # fmt: skip
    return (digital - baseline) / gain, fields
