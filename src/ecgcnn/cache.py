"""The record cache: every record of a root converted once into one memory-mapped array.

A run reads ECGs as slices of ``signals_<fs>hz.npy`` (N, 12, T, float32: a batch is a slice) instead of parsing WFDB files.
``manifest_<fs>hz.json`` beside it holds the ecg_ids, the rate, the lead names and a fingerprint of the
metadata and record files; it is written last, atomically, so a build that was interrupted leaves no
cache that is trusted later.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ecgcnn import atomic
from ecgcnn.errors import EcgcnnError, RecordError
from ecgcnn.recording import (
    BASELINES,
    baseline_signature,
    check_baseline,
    remove_baseline_records,
)
from ecgcnn.records import DATABASE_CSV, LEADS, STATEMENTS_CSV, Database, check_rate, read_record

log = logging.getLogger(__name__)
CACHE_FORMAT = 2
PARALLEL_MIN_RECORDS = 1000


@dataclass(frozen=True)
class Signals:
    """All readable records of a root at one rate: ``data[i]`` is the (12, T) ECG of ``ecg_ids[i]``."""

    data: np.ndarray
    ecg_ids: np.ndarray
    fs: int
    leads: tuple[str, ...]
    failed: dict[int, str]
    # [size, mtime_ns] of the record cache file ``data`` maps, as checked when it was opened (None:
    # records in memory, or treated ones): what a cache derived from these records is made from.
    file: list[int] | None = None

    def rows(self, ecg_ids: np.ndarray) -> np.ndarray:
        """Row numbers in ``data`` of the given ecg_ids (all must be present)."""
        pos = np.searchsorted(self.ecg_ids, ecg_ids)
        pos = np.clip(pos, 0, len(self.ecg_ids) - 1)
        if not np.array_equal(self.ecg_ids[pos], ecg_ids):
            missing = np.setdiff1d(ecg_ids, self.ecg_ids)
            raise EcgcnnError(f"ecg_id(s) {missing[:5].tolist()} are not in the record cache")
        return pos


def _treated_in_memory(signals: Signals, how: str) -> Signals:
    """``signals`` with each lead's baseline treated as ``how`` says, as an in-memory copy: for
    records read from their files, or where the treated cache file cannot be written."""
    start = time.perf_counter()
    data = remove_baseline_records(signals.data, signals.fs, how)
    log.info("baseline (%s) removed from %d records in %.1f s", how, len(data),
             time.perf_counter() - start)  # fmt: skip
    return replace(signals, data=data, file=None)


def cache_base() -> Path:
    """Where each data root's record-cache folder is made: $ECGCNN_CACHE, else ~/.cache/ecgcnn."""
    return Path(os.environ.get("ECGCNN_CACHE") or Path.home() / ".cache" / "ecgcnn")  # "" is unset


def default_cache_dir(root: Path) -> Path:
    """A per-root folder under $ECGCNN_CACHE (default ~/.cache/ecgcnn): data roots may be read-only."""
    base = cache_base()
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return base / f"{root.resolve().name}-{key}"


def fingerprint(db: Database, fs: int) -> str:
    """Hash of the two CSVs' bytes and the size and mtime of every record file at this rate."""
    h = hashlib.sha256()
    for name in (DATABASE_CSV, STATEMENTS_CSV):
        h.update((db.root / name).read_bytes())
    column = "filename_lr" if fs == 100 else "filename_hr"
    for rel in db.records[column]:
        for ext in (".hea", ".dat"):
            try:
                st = os.stat(db.root / f"{rel}{ext}")
                h.update(f"{rel}{ext}:{st.st_size}:{st.st_mtime_ns};".encode())
            except OSError:
                h.update(f"{rel}{ext}:missing;".encode())
    return h.hexdigest()


_WARNED_SKIPS: set[tuple] = set()


def load_signals(
    db: Database,
    fs: int = 100,
    cache_dir: str | Path | None = None,
    skip_missing: bool = False,
    progress: bool = True,
    baseline: str = "keep",
) -> Signals:
    """Load every record of ``db`` at ``fs`` Hz through the cache, building it when stale or absent.

    Unreadable records are an error naming how many and the first few, unless ``skip_missing``
    (then a warning with the count, and the records are left out). With ``baseline`` other than
    ``keep``, each lead's baseline treated as ``remove_baseline`` does, from a second cache file
    built once beside the first (``signals_<fs>hz_<baseline>.npy``): memory-mapped like it, so the
    processes of a torchrun job share one copy and later runs do not filter again.
    """
    check_baseline(baseline)
    check_rate(fs)
    check_rate_folder(db, fs)
    cache = Path(cache_dir) if cache_dir else default_cache_dir(db.root)
    npy, manifest_path = cache / f"signals_{fs}hz.npy", cache / f"manifest_{fs}hz.json"
    fp = fingerprint(db, fs)
    signals = _open_cache(npy, manifest_path, fp)
    if signals is None:
        if manifest_path.exists():
            log.info("record cache %s is stale or damaged: rebuilding", cache)
        signals = _build_cache(db, fs, npy, manifest_path, fp, progress)
    _report_failed(signals.failed, db, skip_missing, (str(npy.resolve()), fp))
    return _treated(signals, npy, baseline, progress)


def _treated(signals: Signals, source: Path, how: str, progress: bool) -> Signals:
    """``signals`` (the records of the cache file ``source``) with each lead's baseline treated as
    ``how``, from their own cache file, built when absent or made from another ``source`` file or
    filter; treated in memory, with a warning, where that file cannot be written."""
    if how == "keep":
        return signals
    if signals.file is None:  # not a cache file's records: nothing to derive a file from
        return _treated_in_memory(signals, how)
    npy, manifest_path, key = where = _treated_file(signals, source, how)
    found = _open_treated(signals, source, how, where)
    if found is not None:
        return found
    fs = signals.fs
    start = time.perf_counter()

    def fill(buf: np.ndarray) -> None:
        for i in tqdm(range(0, len(buf), 256), desc=f"caching {fs} Hz records, baseline {how}",
                      unit_scale=256, disable=not progress):  # fmt: skip
            remove_baseline_records(signals.data[i : i + 256], fs, how, out=buf[i : i + 256])

    try:
        manifest_path.unlink(missing_ok=True)  # no manifest, no trust, until the array is complete
        file = _write_array(npy, signals.data.shape, fill)
        atomic.write_text(manifest_path, json.dumps(key | {"file": file}))
    except OSError as exc:  # a full disk, a read-only folder: the run goes on, in memory
        log.warning("could not cache the records with baseline %s in %s (%s): treating them in "
                    "memory", how, npy.parent, exc)  # fmt: skip
        return _treated_in_memory(signals, how)
    log.info("baseline (%s) removed from %d records in %.1f s, cached in %s", how,
             len(signals.data), time.perf_counter() - start, npy)  # fmt: skip
    data = _open_array(npy, file)
    return replace(signals, data=data if data is not None else np.load(npy, mmap_mode="r"),
                   file=None)  # fmt: skip


def _treated_file(signals: Signals, source: Path, how: str) -> tuple[Path, Path, dict[str, Any]]:
    """The array and manifest paths of ``signals`` treated as ``how``, and what the manifest must say."""
    fs = signals.fs
    key = {"format": CACHE_FORMAT, "baseline": how, "filter": baseline_signature(how, fs),
           "source": signals.file, "shape": list(signals.data.shape)}  # fmt: skip
    return (source.with_name(f"signals_{fs}hz_{how}.npy"),
            source.with_name(f"manifest_{fs}hz_{how}.json"), key)  # fmt: skip


def _open_treated(
    signals: Signals, source: Path, how: str, where: tuple[Path, Path, dict[str, Any]] | None = None
) -> Signals | None:
    """``signals`` treated as ``how`` from their cache file, if it is current; else None
    (``where``: what ``_treated_file`` says, when known already)."""
    npy, manifest_path, key = where or _treated_file(signals, source, how)
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        manifest = json.loads(manifest_path.read_text())
        if all(manifest.get(k) == v for k, v in key.items()):
            data = _open_array(npy, manifest["file"])
            if data is not None and list(data.shape) == key["shape"]:
                return replace(signals, data=data, file=None)
    return None


def _open_array(npy: Path, file: list[int]) -> np.ndarray | None:
    """The .npy memory-mapped if it is the file published as ``file`` ([size, mtime_ns]) before
    and after it was opened (a file replaced meanwhile is not taken for the one described)."""
    try:
        before = npy.stat()
        data = np.load(npy, mmap_mode="r")
        after = npy.stat()
    except (OSError, ValueError):
        return None
    stats = ([before.st_size, before.st_mtime_ns], [after.st_size, after.st_mtime_ns])
    return data if stats[0] == stats[1] == list(file) else None


def _write_array(
    npy: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], int | None]
) -> list[int]:
    """Write a float32 .npy of ``shape`` under a temporary name beside ``npy``, filled by ``fill``
    (which may return how many leading rows it filled: the file keeps those alone), then publish
    it (fsync, rename); returns its [size, mtime_ns]. The file's blocks are reserved before it is
    filled: on a full disk that is an OSError here, not a SIGBUS from a page of a sparse memory map."""
    fd, tmp_name = tempfile.mkstemp(dir=npy.parent, prefix=npy.name, suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        buf = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        _reserve(tmp)
        rows = fill(buf)
        buf.flush()
        del buf
        if rows is not None and rows < shape[0]:
            _keep_rows(tmp, rows)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, npy)
    finally:
        tmp.unlink(missing_ok=True)
    st = npy.stat()
    return [st.st_size, st.st_mtime_ns]


def _npy_header(f: Any) -> tuple[int, tuple[int, ...], bool, np.dtype]:
    """A .npy file's format version, shape, Fortran order and dtype; ``f`` is left at its data."""
    fmt = np.lib.format
    major, _ = fmt.read_magic(f)
    read = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
    return (major, *read(f))


def _keep_rows(path: Path, rows: int) -> None:
    """Cut a C-order .npy to its first ``rows``, in place: the header is rewritten for the new shape
    at its old length (padded with spaces, as numpy pads it; still aligned), the rest truncated."""
    fmt = np.lib.format
    with open(path, "r+b") as f:
        major, shape, fortran, dtype = _npy_header(f)
        data_at = f.tell()
        text_at = 10 if major == 1 else 12  # magic, version, then the header's length
        header = repr({"descr": fmt.dtype_to_descr(dtype), "fortran_order": fortran,
                       "shape": (rows, *shape[1:])})  # fmt: skip
        f.seek(text_at)
        f.write(header.ljust(data_at - text_at - 1).encode("latin1") + b"\n")
        f.truncate(data_at + rows * int(np.prod(shape[1:])) * dtype.itemsize)


def _reserve(path: Path) -> None:
    """Allocate every block of ``path`` (ENOSPC is raised); a file system or platform that cannot
    say in advance is left to find out as it is written."""
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows
        return
    with open(path, "rb+") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                return
            raise


def load_some_signals(
    db: Database,
    ecg_ids: np.ndarray,
    fs: int = 100,
    cache_dir: str | Path | None = None,
    skip_missing: bool = False,
    progress: bool = True,
    baseline: str = "keep",
) -> Signals:
    """The records ``ecg_ids`` of ``db`` at ``fs`` Hz: from the root's record cache when it is
    current, else read from their files alone (a part of a root is not cached: a cache is the
    whole root's). Only these records need to be readable (``skip_missing`` as for load_signals).
    ``baseline`` as for load_signals: records read from their files are treated in memory.
    """
    check_baseline(baseline)
    check_rate(fs)
    check_rate_folder(db, fs)
    cache = Path(cache_dir) if cache_dir else default_cache_dir(db.root)
    npy, manifest_path = cache / f"signals_{fs}hz.npy", cache / f"manifest_{fs}hz.json"
    fp = fingerprint(db, fs)
    wanted = np.sort(np.asarray(ecg_ids, dtype=np.int64))
    signals = _open_cache(npy, manifest_path, fp)
    if signals is None:
        length = fs * 10
        paths = [str(db.record_path(int(eid), fs)) for eid in wanted]
        data = np.zeros((len(wanted), 12, length), dtype=np.float32)
        failed: dict[int, str] = {}
        reads = _read_all(paths, fs, length)
        for i, result in enumerate(tqdm(reads, total=len(paths), desc=f"reading {fs} Hz records",
                                        disable=not progress)):  # fmt: skip
            if isinstance(result, str):
                failed[int(wanted[i])] = result
            else:
                data[i] = result
        ok = ~np.isin(wanted, list(failed))
        signals = Signals(data[ok], wanted[ok], fs, LEADS, failed)
    else:
        signals = replace(signals, failed={k: v for k, v in signals.failed.items()
                                           if k in set(wanted.tolist())})  # fmt: skip
    _report_failed(signals.failed, db, skip_missing, (str(npy.resolve()), fp, len(wanted)))
    if baseline == "keep" or signals.file is None:
        return _treated(signals, npy, baseline, progress)
    # the root's treated records where a run has cached them; else these records alone, in memory
    cached = _open_treated(signals, npy, baseline)
    if cached is not None:
        return cached
    present = wanted[np.isin(wanted, signals.ecg_ids)]
    part = replace(signals, data=np.asarray(signals.data[signals.rows(present)]), ecg_ids=present,
                   file=None)  # fmt: skip
    return _treated_in_memory(part, baseline)


def _report_failed(failed: dict[int, str], db: Database, skip_missing: bool, key: tuple) -> None:
    """Unreadable records are an error naming the first few, or with ``skip_missing`` a warning,
    said once per process for one set of records."""
    if not failed:
        return
    listing = "; ".join(f"ecg_id {k}: {v}" for k, v in list(failed.items())[:3])
    if not skip_missing:
        raise EcgcnnError(
            f"{len(failed)} record(s) missing or unreadable under {db.root} (first: {listing}); "
            "pass --skip-missing to leave them out"
        )
    if key not in _WARNED_SKIPS:  # said once per process, not per load of the same cache
        _WARNED_SKIPS.add(key)
        log.warning("skipping %d missing or unreadable record(s) (first: %s)", len(failed), listing)


def _rate_folders(db: Database, fs: int) -> tuple[set[str], bool]:
    """The top folders the records at ``fs`` are named under (records100, records500) and whether
    the root has one of them; a blank file name is an error naming its ecg_id."""
    column = "filename_lr" if fs == 100 else "filename_hr"
    blank = db.records[column].isna() | (db.records[column].astype(str).str.strip() == "")
    if blank.any():
        raise EcgcnnError(
            f"{db.root / DATABASE_CSV}: ecg_id {int(db.records.index[blank.to_numpy()][0])} has no "
            f"{column} (records at {fs} Hz)"
        )
    tops = {Path(str(f)).parts[0] for f in db.records[column].head(1000)}
    return tops, not tops or any((db.root / top).is_dir() for top in tops)


def _named(tops: set[str], most: int = 3) -> str:
    """'records100/ folder', or the first ``most`` of many folders (``tops`` may be a sample)."""
    names = sorted(tops)
    shown = "/, ".join(names[:most]) + "/ folder"
    return shown if len(names) <= most else f"{shown} (and more)"


def check_rate_folder(db: Database, fs: int) -> None:
    """Refuse a root without the folder its records at ``fs`` live in (records100/ or records500/)."""
    tops, present = _rate_folders(db, fs)
    if present:
        return
    other = {100: 500, 500: 100}[fs]
    hint = (
        f"; it has records{other}/: use --fs {other}"
        if (db.root / f"records{other}").is_dir()
        else ""
    )
    raise EcgcnnError(f"{db.root} has no {_named(tops)} for --fs {fs}{hint}")


def rate_to_read(db: Database, fs: int) -> int:
    """The rate to read a root's records at for a checkpoint of ``fs`` Hz (which no flag changes):
    ``fs`` where the root has them, else PTB-XL's other rate where it has those (to be resampled
    to ``fs``, with a warning), else an error saying neither is there."""
    tops, present = _rate_folders(db, fs)
    if present:
        return fs
    other = {100: 500, 500: 100}[fs]
    with contextlib.suppress(EcgcnnError):  # a blank filename_hr: not a rate to fall back on
        if _rate_folders(db, other)[1]:
            log.warning("%s has no records%d/: reading records%d/ and resampling them to this "
                        "checkpoint's %d Hz", db.root, fs, other, fs)  # fmt: skip
            return other
    raise EcgcnnError(f"{db.root} has no {_named(tops)} for this checkpoint's "
                      f"{fs} Hz, nor records{other}/ to resample from")  # fmt: skip


def _open_cache(npy: Path, manifest_path: Path, fp: str) -> Signals | None:
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != CACHE_FORMAT or manifest.get("fingerprint") != fp:
            return None
        # Size and mtime of the array file as published: an edited, truncated or copied-in file differs.
        data = _open_array(npy, manifest["file"])
        if data is None or list(data.shape) != manifest["shape"]:
            return None
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None
    failed = {int(k): v for k, v in manifest["failed"].items()}
    return Signals(
        data, np.asarray(manifest["ecg_ids"], dtype=np.int64), manifest["fs"], tuple(manifest["leads"]),
        failed, list(manifest["file"]),
    )  # fmt: skip


def _read_one(path: str, fs: int, length: int) -> np.ndarray | str:
    """One record as (12, T), or the error message (errors cross process boundaries as text)."""
    try:
        sig, rec_fs = read_record(path, LEADS)
        if rec_fs != fs or sig.shape[0] != length:
            raise RecordError(
                path, f"expected {length} samples at {fs} Hz, got {sig.shape[0]} at {rec_fs} Hz"
            )
    except RecordError as exc:
        return str(exc)
    return np.ascontiguousarray(sig.T)


def _read_all(paths: list[str], fs: int, length: int) -> Iterator[np.ndarray | str]:
    """Read records in order; in worker processes when there are many (WFDB header parsing is slow)."""
    workers = min(os.cpu_count() or 1, 8)
    if len(paths) < PARALLEL_MIN_RECORDS or workers < 2:
        return (_read_one(p, fs, length) for p in paths)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    with workers_leave_ctrl_c():  # the workers start as the chunks are submitted
        results = pool.map(
            _read_one, paths, itertools.repeat(fs), itertools.repeat(length), chunksize=32
        )

    def drain() -> Iterator[np.ndarray | str]:
        try:
            yield from results
        finally:  # done, or stopped (Ctrl-C): the chunks not started are dropped
            pool.shutdown(wait=True, cancel_futures=True)

    return drain()


@contextlib.contextmanager
def workers_leave_ctrl_c() -> Iterator[None]:
    """Processes started inside ignore SIGINT (an ignored signal stays ignored across exec): Ctrl-C
    reaches the whole process group, and a worker still importing would print a traceback of its
    own; the parent alone stops, and stops its pool."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _build_cache(
    db: Database, fs: int, npy: Path, manifest_path: Path, fp: str, progress: bool
) -> Signals:
    cache = npy.parent
    ids = db.records.index.to_numpy(dtype=np.int64)
    length = fs * 10
    failed: dict[int, str] = {}
    ok = np.zeros(len(ids), dtype=bool)

    def fill(buf: np.ndarray) -> int:
        """Readable records into consecutive rows (so the file holds them alone, in ecg_id order)."""
        paths = [str(db.record_path(int(eid), fs)) for eid in ids]
        filled = 0
        try:
            reads = _read_all(paths, fs, length)
            for i, (eid, result) in enumerate(tqdm(zip(ids, reads, strict=True), total=len(ids),
                                                   desc=f"caching {fs} Hz records",
                                                   disable=not progress)):  # fmt: skip
                if isinstance(result, str):
                    failed[int(eid)] = result
                    continue
                buf[filled] = result
                ok[i] = True
                filled += 1
        except OSError as exc:  # not the cache's fault (a reader process, too many open files)
            raise EcgcnnError(f"reading the records of {db.root}: {exc}") from None
        return filled

    try:
        cache.mkdir(parents=True, exist_ok=True)
        manifest_path.unlink(missing_ok=True)  # no manifest, no trust, until the array is complete
        file = _write_array(npy, (len(ids), 12, length), fill)
        manifest = {
            "format": CACHE_FORMAT,
            "root": str(db.root.resolve()),
            "fs": fs,
            "leads": list(LEADS),
            "shape": [int(ok.sum()), 12, length],
            "file": file,
            "ecg_ids": ids[ok].tolist(),
            "failed": {str(k): v for k, v in failed.items()},
            "fingerprint": fp,
        }
        atomic.write_text(manifest_path, json.dumps(manifest))
    except OSError as exc:
        where = exc.filename if exc.filename and not str(exc.filename).endswith(".tmp") else cache
        raise EcgcnnError(
            f"{where}: {exc.strerror or exc}; the record cache needs a folder it can write, with "
            "room for it (--cache-dir or $ECGCNN_CACHE choose another)"
        ) from None
    data = _open_array(npy, file)
    if data is None:  # replaced since (another run's build): no file to derive a cache from
        return Signals(np.load(npy, mmap_mode="r"), ids[ok], fs, LEADS, failed)
    return Signals(data, ids[ok], fs, LEADS, failed, file)


# What the cache folders hold, for `ecgcnn cache list` and `ecgcnn cache clear`. ------------------

# what a build wrote longer ago than this is an interrupted build's, not a running one's
LEFTOVER_AGE_S = 24 * 3600
_RECORDS = re.compile(r"signals_(\d+)hz\.npy")
_TREATED = re.compile(r"signals_(\d+)hz_([a-z]+)\.npy")


@dataclass(frozen=True)
class CacheFile:
    """One thing in a cache folder: the record cache at one rate (``kind`` records), those records
    with the baseline treated one way (treated), or a build's temporary file (temporary).

    ``paths``: the array, then its manifest where there is one. ``usable``: a run can use it as it
    is; otherwise ``note`` says why not (the next run that needs it rebuilds it, or none will)."""

    folder: Path
    kind: str
    paths: tuple[Path, ...]
    bytes: int
    modified: float
    fs: int | None = None
    baseline: str | None = None
    root: str | None = None
    records: int | None = None
    usable: bool = False
    note: str = ""
    running: bool = False  # a build's file written within LEFTOVER_AGE_S: it may be running

    @property
    def unused(self) -> bool:
        """No run can use it as it is, and no build is writing it: `cache clear --unused` removes it."""
        return not self.usable and not self.running

    @property
    def name(self) -> str:
        if self.kind == "temporary":
            return self.paths[0].name
        return f"{self.fs} Hz" + (f", baseline {self.baseline}" if self.kind == "treated" else "")


def scan_caches(where: str | Path | None = None) -> list[CacheFile]:
    """Everything ecgcnn cached in ``where`` (default: $ECGCNN_CACHE or ~/.cache/ecgcnn): a cache
    folder (``--cache-dir``) or a folder of them, each file checked as a run would check it (the
    record cache against its data root's files, a treated file against the record cache and the
    filter). Files ecgcnn did not write are not listed, so are never removed."""
    where = Path(where) if where is not None else cache_base()
    if not where.exists():
        return []
    if not where.is_dir():
        raise EcgcnnError(
            f"{where}: not a folder (expected a record-cache folder or a folder of them)"
        )
    folders = [where, *sorted(p for p in where.iterdir() if p.is_dir() and not p.is_symlink())]
    fingerprints: dict[tuple[str, int], str] = {}  # a root's, computed once per scan
    return [f for folder in folders for f in _scan_folder(folder, fingerprints)]


def _scan_folder(folder: Path, fingerprints: dict[tuple[str, int], str]) -> list[CacheFile]:
    found: list[CacheFile] = []
    records: dict[int, tuple[CacheFile, list[int] | None]] = {}  # fs -> the record cache, its file
    for npy in sorted(folder.glob("signals_*hz.npy")):
        if (m := _RECORDS.fullmatch(npy.name)) and (
            got := _records_file(folder, int(m[1]), fingerprints)
        ):
            records[int(m[1])] = got
            found.append(got[0])
    for npy in sorted(folder.glob("signals_*hz_*.npy")):
        m = _TREATED.fullmatch(npy.name)
        if m and m[2] in BASELINES and m[2] != "keep":
            treated = _treated_cache_file(
                folder, int(m[1]), m[2], *records.get(int(m[1]), (None, None))
            )
            found += [treated] if treated else []
    for tmp in sorted(folder.glob("signals_*.npy*.tmp")) + sorted(folder.glob(".manifest_*.tmp")):
        with contextlib.suppress(OSError):
            st = tmp.stat()
            old = time.time() - st.st_mtime > LEFTOVER_AGE_S
            found.append(CacheFile(folder, "temporary", (tmp,), st.st_size, st.st_mtime,
                                   note="interrupted build" if old else
                                   "a build, maybe running (kept a day)", running=not old))  # fmt: skip
    return found


def _sizes(paths: list[Path]) -> tuple[int, float]:
    total, newest = 0, 0.0
    for path in paths:
        with contextlib.suppress(OSError):
            st = path.stat()
            total, newest = total + st.st_size, max(newest, st.st_mtime)
    return total, newest


def _looks_like_ours(npy: Path) -> bool:
    """A .npy of float32 ECGs (records, 12, samples), as ecgcnn writes: an array found without a
    manifest that ecgcnn can read is only taken for an unfinished build of its own when it is one."""
    try:
        with open(npy, "rb") as f:
            _, shape, _, dtype = _npy_header(f)
    except (OSError, ValueError):
        return False
    return dtype == np.float32 and len(shape) == 3 and shape[1] == len(LEADS)


def _unfinished(base: CacheFile, note: str) -> CacheFile | None:
    """``base``, an array whose manifest is missing or unreadable: a build's that was cut short, or
    is publishing it now (written within LEFTOVER_AGE_S); None when the array is not ecgcnn's."""
    if not _looks_like_ours(base.paths[0]):
        return None
    if time.time() - base.modified <= LEFTOVER_AGE_S and note.startswith("no manifest"):
        return replace(base, note="no manifest yet (a build, maybe running; kept a day)",
                       running=True)  # fmt: skip
    return replace(base, note=note)


def _records_file(
    folder: Path, fs: int, fingerprints: dict[tuple[str, int], str]
) -> tuple[CacheFile, list[int] | None] | None:
    """The record cache at ``fs`` in ``folder`` and the [size, mtime_ns] its manifest gives its
    array (what a treated file is made from), or None where the array is not ecgcnn's."""
    npy, manifest_path = folder / f"signals_{fs}hz.npy", folder / f"manifest_{fs}hz.json"
    paths = [npy] + ([manifest_path] if manifest_path.exists() else [])
    size, modified = _sizes(paths)
    base = CacheFile(folder, "records", tuple(paths), size, modified, fs)
    try:
        manifest = json.loads(manifest_path.read_text())
        root, shape = str(manifest["root"]), manifest["shape"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        missing = isinstance(exc, FileNotFoundError)
        found = _unfinished(base, "no manifest (interrupted build)" if missing
                            else f"unreadable manifest ({exc})")  # fmt: skip
        return (found, None) if found else None
    base = replace(base, root=root, records=int(shape[0]) if shape else None)
    note = _records_note(npy, fs, manifest, fingerprints)
    return replace(base, usable=not note, note=note), manifest.get("file")


def _records_note(
    npy: Path, fs: int, manifest: dict[str, Any], fingerprints: dict[tuple[str, int], str]
) -> str:
    """Why no run can use the record cache ``npy`` described by ``manifest``; "" when one can."""
    from ecgcnn.records import load_database

    root = str(manifest["root"])
    if manifest.get("format") != CACHE_FORMAT:
        return f"cache format {manifest.get('format')} (this ecgcnn: {CACHE_FORMAT})"
    if not Path(root).is_dir():
        return "data root not found (deleted, moved or unmounted)"
    try:
        if (root, fs) not in fingerprints:
            fingerprints[root, fs] = fingerprint(load_database(root), fs)
    except (EcgcnnError, OSError, ValueError) as exc:
        return f"data root unreadable ({' '.join(str(exc).split())})"
    if fingerprints[root, fs] != manifest.get("fingerprint"):
        return "data root changed since"
    if _open_array(npy, manifest.get("file") or []) is None:
        return "array differs from its manifest"
    return ""


def _treated_cache_file(
    folder: Path, fs: int, how: str, records: CacheFile | None, source: list[int] | None
) -> CacheFile | None:
    """The file of ``fs`` Hz records treated as ``how`` in ``folder``, made from ``records`` (the
    record cache beside it, whose array its manifest gives as ``source``), or None where the array
    is not ecgcnn's."""
    npy, manifest_path = (
        folder / f"signals_{fs}hz_{how}.npy",
        folder / f"manifest_{fs}hz_{how}.json",
    )
    paths = [npy] + ([manifest_path] if manifest_path.exists() else [])
    size, modified = _sizes(paths)
    base = CacheFile(folder, "treated", tuple(paths), size, modified, fs, how,
                     records.root if records else None)  # fmt: skip
    try:
        manifest = json.loads(manifest_path.read_text())
        base = replace(base, records=int(manifest["shape"][0]))
    except FileNotFoundError:
        return _unfinished(base, "no manifest (interrupted build)")
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        return _unfinished(base, f"unreadable manifest ({exc})")
    if manifest.get("format") != CACHE_FORMAT:
        return replace(base, note=f"cache format {manifest.get('format')} (this ecgcnn: "
                       f"{CACHE_FORMAT})")  # fmt: skip
    if records is None:
        return replace(base, note=f"no {fs} Hz record cache beside it")
    if not records.usable:
        return replace(base, note=f"its record cache: {records.note}")
    if manifest.get("source") != source:
        return replace(base, note="from an earlier record cache")
    if manifest.get("filter") != baseline_signature(how, fs):
        return replace(base, note="another filter (ecgcnn, scipy)")
    if _open_array(npy, manifest.get("file") or []) is None:
        return replace(base, note="array differs from its manifest")
    return replace(base, usable=True)


def remove_cache_files(files: list[CacheFile], keep: str | Path | None = None) -> int:
    """Delete ``files`` (each manifest before its array: a half-removed cache is never trusted) and
    the folders they leave empty, other than ``keep`` (the folder named to scan_caches); returns
    the bytes freed. A run that has a file open keeps reading it; the next run rebuilds what it needs."""
    freed = 0
    for f in files:
        for path in sorted(f.paths, key=lambda p: p.suffix != ".json"):
            with contextlib.suppress(FileNotFoundError):
                size = path.stat().st_size
                path.unlink()
                freed += size
    for folder in sorted({f.folder for f in files} - {Path(keep) if keep else None}, reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty: other files of the folder are not ecgcnn's to remove
    return freed
