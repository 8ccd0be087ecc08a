"""Recordings from the wild: WFDB (.dat or CinC-style .mat), EDF, .npy and CSV, made model-ready.

Whatever the source, a recording becomes a :class:`Recording`: float32 millivolts, shape
(samples, leads), its leads in the order asked for (matched by name, case-insensitively and by common
aliases), with missing leads an error unless zero-filling is allowed. Every problem with the input
is a one-line :class:`~ecgcnn.errors.RecordError` naming the record.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from ecgcnn.errors import EcgcnnError, RecordError
from ecgcnn.records import LEADS, unit_scale

WFDB_SUFFIXES = (".hea", ".dat", ".mat")
ARRAY_SUFFIXES = (".npy", ".csv")
EDF_SUFFIXES = (".edf",)
# A lead this flat over the whole segment is a disconnected electrode, not an ECG (the flattest
# lead of the 1,732 PTB-XL development records spans 0.2 mV).
FLAT_MV = 0.005
# Sampling rates accepted (resampling ratios stay exact fractions with denominators <= 1000).
MIN_RATE, MAX_RATE = 10.0, 100_000.0
# Larger than any ECG in millivolts: such values are most likely microvolts labelled as mV.
IMPLAUSIBLE_MV = 30.0
# CSV columns that carry time rather than a lead, ignored without a warning.
TIME_COLUMNS = {"", "t", "time", "times", "time_s", "seconds", "sec", "s", "ms", "sample",
                "samples", "index", "idx", "n"}  # fmt: skip


def _lead_aliases() -> dict[str, str]:
    aliases = {lead: lead for lead in LEADS}
    aliases |= {"DI": "I", "DII": "II", "DIII": "III", "VR": "AVR", "VL": "AVL", "VF": "AVF"}
    aliases |= {f"C{k}": f"V{k}" for k in range(1, 7)}  # European chest-lead names
    return aliases


LEAD_ALIASES: dict[str, str] = _lead_aliases()


def canonical_lead(name: object) -> str | None:
    """The standard name (one of LEADS) of a lead label: 'aVR', 'avr', 'Lead aVR', 'VR' -> 'AVR'.

    None when the label is not a standard 12-lead name ('MLII', 'ECG1', '-aVR').
    """
    key = re.sub(r"[\s_]", "", str(name)).upper()
    if key.startswith("LEAD") and len(key) > 4:
        key = key[4:]
    return LEAD_ALIASES.get(key)


def _is_ambulatory(name: object) -> bool:
    """MLII, MLI, MLIII, ML5...: modified (Holter) limb leads, not leads of a 12-lead ECG."""
    return re.sub(r"[\s_]", "", str(name)).upper().startswith("ML")


@dataclass(frozen=True)
class Recording:
    """One ECG ready for a model: float32 millivolts, (samples, leads), leads in ``leads`` order."""

    name: str
    signal: np.ndarray
    fs: float
    leads: tuple[str, ...]
    filled_leads: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def duration_s(self) -> float:
        return self.signal.shape[0] / self.fs

    def segment(self, start_s: float | None, end_s: float | None) -> Recording:
        """The part from ``start_s`` to ``end_s`` seconds (None: the record's start / end)."""
        start = 0.0 if start_s is None else float(start_s)
        end = self.duration_s if end_s is None else float(end_s)
        if not (0 <= start < end):
            raise RecordError(self.name, f"segment {start:g}:{end:g} s is empty or starts before 0")
        if end > self.duration_s + 0.5 / self.fs or start >= self.duration_s:
            raise RecordError(
                self.name,
                f"segment {start:g}:{end:g} s ends after the recording ({self.duration_s:g} s)",
            )
        i, j = int(round(start * self.fs)), int(round(end * self.fs))
        return replace(self, signal=self.signal[i:j])

    def validate(self) -> Recording:
        """Refuse NaN/inf samples and flat (disconnected) leads; filled leads are exempt."""
        bad = ~np.isfinite(self.signal)
        if bad.any():
            lead = self.leads[int(np.flatnonzero(bad.any(axis=0))[0])]
            raise RecordError(
                self.name, f"{int(bad.sum())} NaN or infinite sample(s) (first in lead {lead})"
            )
        if self.signal.shape[0] == 0:
            raise RecordError(self.name, "the recording holds no samples")
        span = np.ptp(self.signal, axis=0)
        flat = [lead for lead, s in zip(self.leads, span, strict=True)
                if s < FLAT_MV and lead not in self.filled_leads]  # fmt: skip
        if flat:
            raise RecordError(
                self.name,
                f"flat lead(s) {', '.join(flat)} (peak to peak under {FLAT_MV * 1000:g} µV): "
                "disconnected electrode?",
            )
        return self


def resample(signal: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample (samples, leads) from ``fs_in`` to ``fs_out`` Hz with an anti-aliasing polyphase FIR.

    scipy's resample_poly low-passes at the lower Nyquist rate (Kaiser window, as PTB-XL's own
    100 Hz records were made); 'line' padding keeps a baseline offset from ringing at the edges.
    """
    from scipy.signal import resample_poly

    if fs_in == fs_out:
        return signal
    ratio = Fraction(float(fs_out) / float(fs_in)).limit_denominator(1000)
    out = resample_poly(signal, ratio.numerator, ratio.denominator, axis=0, padtype="line")
    return out.astype(np.float32, copy=False)


def conform(
    signal: np.ndarray,
    fs: float,
    names: Sequence[str] | None,
    name: str,
    leads: Sequence[str] = LEADS,
    units: Sequence[str] | str = "mV",
    allow_missing_leads: bool = False,
    warnings: Iterable[str] = (),
) -> Recording:
    """Match channels to ``leads`` by name, reorder, convert to millivolts, zero-fill if allowed.

    ``signal`` is (samples, channels), or (channels, samples) when only that orientation fits the
    channel count; ``names`` labels the channels (None: they are exactly ``leads``, in order).
    """
    leads = tuple(leads)
    warn = list(warnings)
    fs = _check_rate(fs, name)
    arr = np.asarray(signal)
    if arr.dtype.kind not in "iuf" or arr.ndim != 2:
        raise RecordError(
            name,
            f"expected a 2-D numeric array (samples, leads), got {arr.ndim}-D of {arr.dtype}",
        )
    n_ch = len(leads) if names is None else len(names)
    if arr.shape[1] != n_ch and arr.shape[0] == n_ch:
        arr = arr.T  # (leads, samples) as the models take it
    if arr.shape[1] != n_ch:
        expected = (
            f"{n_ch} leads ({', '.join(leads)}) in that order" if names is None
            else f"one column per lead name ({n_ch})"
        )  # fmt: skip
        raise RecordError(name, f"wrong lead count: shape {arr.shape}, expected {expected}")
    names = list(leads) if names is None else [str(n) for n in names]
    unit_list = [units] * n_ch if isinstance(units, str) else list(units)
    canon = [canonical_lead(n) for n in names]
    dup = sorted({c for c in canon if c is not None and canon.count(c) > 1})
    if dup:
        raise RecordError(name, f"lead(s) {', '.join(dup)} appear more than once in {names}")
    found = {c: i for i, c in enumerate(canon) if c is not None}
    wanted = [canonical_lead(lead) or lead for lead in leads]
    missing = [lead for lead, c in zip(leads, wanted, strict=True) if c not in found]
    ambulatory = [n for n in names if _is_ambulatory(n)]
    if missing and ambulatory:
        raise RecordError(
            name,
            f"not a 12-lead ECG: {', '.join(ambulatory)} is a modified ambulatory lead "
            f"(leads: {', '.join(names)})",
        )
    if missing and not allow_missing_leads:
        raise RecordError(
            name,
            f"missing lead(s) {', '.join(missing)}; has {', '.join(names)} "
            "(--allow-missing-leads fills missing leads with zeros)",
        )
    if len(missing) == len(leads):
        raise RecordError(name, f"none of the leads {', '.join(names)} is a standard 12-lead name")
    ignored = [n for n, c in zip(names, canon, strict=True) if c is None or c not in wanted]
    if ignored:
        warn.append(f"ignored channel(s) {', '.join(ignored)}")
    out = np.zeros((arr.shape[0], len(leads)), dtype=np.float32)
    for j, c in enumerate(wanted):
        if c not in found:
            continue
        i = found[c]
        scale = unit_scale(unit_list[i])
        if scale is None:
            warn.append(f"unknown unit {unit_list[i]!r} of lead {names[i]}: taken as mV")
            scale = 1.0
        out[:, j] = arr[:, i] * scale
    if missing:
        warn.append(f"lead(s) {', '.join(missing)} missing: filled with zeros")
    finite = np.abs(out[np.isfinite(out)])  # NaNs are validate()'s to report
    peak = float(finite.max()) if finite.size else 0.0
    if peak > IMPLAUSIBLE_MV:
        warn.append(f"amplitudes up to {peak:.0f} mV: is the signal in microvolts? (units)")
    return Recording(name, out, fs, leads, tuple(missing), tuple(warn))


def _check_rate(fs: object, name: str) -> float:
    try:
        value = float(fs)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RecordError(name, f"sampling rate {fs!r} is not a number") from None
    if not np.isfinite(value) or value <= 0:
        raise RecordError(name, f"sampling rate {fs!r} Hz must be positive")
    if not MIN_RATE <= value <= MAX_RATE:
        raise RecordError(
            name,
            f"sampling rate {value:g} Hz is outside {MIN_RATE:g}-{MAX_RATE:g} Hz: not an ECG rate",
        )
    return value


# --- readers ----------------------------------------------------------------------------------


def record_kind(path: Path) -> str:
    """'wfdb', 'edf', 'npy' or 'csv' by suffix (a name without suffix is a WFDB record name)."""
    suffix = path.suffix.lower()
    if suffix in WFDB_SUFFIXES or (path.with_name(path.name + ".hea")).is_file():
        return "wfdb"
    if suffix in EDF_SUFFIXES:
        return "edf"
    if suffix in ARRAY_SUFFIXES:
        return suffix[1:]
    raise RecordError(
        str(path),
        f"unsupported file type {suffix or '(none)'}; expected a WFDB record (.hea with .dat or "
        ".mat), .edf, .npy or .csv",
    )


def record_name(path: str | Path) -> str:
    """The name a record is reported under: WFDB records without their extension."""
    p = Path(path)
    return str(p.with_suffix("")) if p.suffix.lower() in WFDB_SUFFIXES else str(p)


def read_recording(
    path: str | Path,
    leads: Sequence[str] = LEADS,
    fs: float | None = None,
    units: str = "mV",
    allow_missing_leads: bool = False,
) -> Recording:
    """Read a recording in any supported format as a :class:`Recording` in ``leads`` order.

    ``fs`` and ``units`` are needed for .npy and CSV files only (WFDB and EDF headers carry both).
    """
    p = Path(path)
    kind = record_kind(p)
    name = record_name(p)
    warn: list[str] = []
    if kind in ("npy", "csv"):
        if fs is None:
            raise RecordError(name, f"a .{kind} file has no sampling rate: give it (--fs HZ)")
        signal, names = _read_npy(p, name) if kind == "npy" else _read_csv(p, name)
        rate, unit_list = fs, units
    else:
        if p.suffix.lower() == ".mat" and not p.with_suffix(".hea").is_file():
            raise RecordError(
                name,
                "a .mat recording needs its WFDB header (.hea), as in the PhysioNet/CinC releases",
            )
        signal, rate, names, unit_list = (
            _read_wfdb(name) if kind == "wfdb" else _read_edf(p, name)
        )  # fmt: skip
        if fs is not None and abs(float(fs) - rate) > 1e-6:
            warn.append(f"the header says {rate:g} Hz: --fs {fs:g} ignored")
    return conform(signal, rate, names, name, leads, unit_list, allow_missing_leads, warn)


def _read_wfdb(name: str) -> tuple[np.ndarray, float, list[str], list[str]]:
    import wfdb

    try:
        signal, fields = wfdb.rdsamp(name)
    except FileNotFoundError as exc:
        missing = Path(exc.filename or name)
        if missing.suffix == ".hea":
            raise RecordError(name, f"header {missing.name} not found") from None
        raise RecordError(
            name, f"signal file {missing.name} named in the header not found"
        ) from None
    except Exception as exc:  # wfdb raises many types on corrupt input
        problem = _truncation(name) or f"unreadable WFDB record ({type(exc).__name__}: {exc})"
        raise RecordError(name, problem) from None
    expected = fields.get("sig_len")
    if signal is None or signal.ndim != 2 or (expected is not None and signal.shape[0] != expected):
        shape = None if signal is None else signal.shape
        problem = (
            _truncation(name) or f"signal has shape {shape}, the header says {expected} samples"
        )
        raise RecordError(name, problem)
    units = list(fields.get("units") or ["mV"] * signal.shape[1])
    return signal, float(fields["fs"]), [str(n) for n in fields["sig_name"]], units


# Bytes per sample of the WFDB storage formats (compressed FLAC formats 508/516/524 excluded).
_WFDB_BYTES = {"8": 1, "16": 2, "24": 3, "32": 4, "61": 2, "80": 1, "160": 2, "212": 1.5,
               "310": 4 / 3, "311": 4 / 3}  # fmt: skip


def _truncation(name: str) -> str | None:
    """Why a record failed, when it is because a signal file is shorter than its header needs."""
    import math

    import wfdb

    try:
        h = wfdb.rdheader(name)
        n = h.n_sig or 0
        frame_bytes: dict[str, float] = {}
        offsets: dict[str, int] = {}
        for i in range(n):
            per = _WFDB_BYTES.get(str(h.fmt[i]))
            if per is None:
                return None
            spf = (h.samps_per_frame or [1] * n)[i] or 1
            frame_bytes[h.file_name[i]] = frame_bytes.get(h.file_name[i], 0) + per * spf
            offsets[h.file_name[i]] = int((h.byte_offset or [0] * n)[i] or 0)
        for file, per_frame in frame_bytes.items():
            need = offsets[file] + math.ceil(per_frame * (h.sig_len or 0))
            size = (Path(name).parent / file).stat().st_size
            if size < need:
                return f"signal file {file} has {size} bytes, the header needs {need} (truncated?)"
    except Exception:  # no better explanation than the reader's own
        return None
    return None


# EDF signal-header fields, in file order, with their widths (each repeated once per signal).
_EDF_FIELDS = (("label", 16), ("transducer", 80), ("unit", 8), ("phys_min", 8), ("phys_max", 8),
               ("dig_min", 8), ("dig_max", 8), ("prefilter", 80), ("samples", 8), ("reserved", 32))  # fmt: skip


def _read_edf(path: Path, name: str) -> tuple[np.ndarray, float, list[str], list[str]]:
    """EDF / EDF+C, 16-bit: the ECG channels (those at the highest rate; annotations are skipped).

    Read here rather than with wfdb's EDF reader, whose baseline is one step off for some
    physical ranges (e.g. a gain of exactly 1 per µV).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecordError(name, "file not found") from None
    try:
        n_sig = int(raw[252:256])
        header_bytes, n_records = int(raw[184:192]), int(raw[236:244])
        duration = float(raw[244:252])
        fields: dict[str, list[str]] = {}
        pos = 256
        for key, width in _EDF_FIELDS:
            fields[key] = [raw[pos + i * width : pos + (i + 1) * width].decode("latin-1").strip()
                           for i in range(n_sig)]  # fmt: skip
            pos += width * n_sig
        samples = np.array([int(v) for v in fields["samples"]])
        limits = [np.array([float(v) for v in fields[k]])
                  for k in ("phys_min", "phys_max", "dig_min", "dig_max")]  # fmt: skip
    except (ValueError, IndexError) as exc:
        raise RecordError(name, f"not an EDF file (malformed header: {exc})") from None
    frame = int(samples.sum())
    if n_sig < 1 or duration <= 0 or header_bytes != 256 * (n_sig + 1) or samples.min() < 1:
        raise RecordError(name, "not an EDF file (inconsistent header)")
    available = max(0, (len(raw) - header_bytes) // (2 * frame))
    if n_records < 0:  # -1: unknown while recording
        n_records = available
    if available < n_records:
        raise RecordError(
            name,
            f"EDF file holds {available} of the {n_records} data records its header says (truncated?)",
        )
    data = np.frombuffer(raw, "<i2", count=n_records * frame, offset=header_bytes).reshape(
        n_records, frame
    )
    is_ecg = np.array([label != "EDF Annotations" for label in fields["label"]])
    if not is_ecg.any():
        raise RecordError(name, "the EDF file holds no signals")
    rate = samples[is_ecg].max()
    keep = np.flatnonzero(is_ecg & (samples == rate))
    offsets = np.concatenate([[0], np.cumsum(samples)])
    phys_min, phys_max, dig_min, dig_max = (lim[keep] for lim in limits)
    digital = np.stack([data[:, offsets[i] : offsets[i + 1]].reshape(-1) for i in keep], axis=1)
    gain = (phys_max - phys_min) / np.where(dig_max == dig_min, 1.0, dig_max - dig_min)
    signal = (digital - dig_min) * gain + phys_min
    return (
        signal,
        rate / duration,
        [fields["label"][i] for i in keep],
        [fields["unit"][i] for i in keep],
    )


def _read_npy(path: Path, name: str) -> tuple[np.ndarray, None]:
    try:
        arr = np.load(path, allow_pickle=False)  # never unpickle objects from a data file
    except FileNotFoundError:
        raise RecordError(name, "file not found") from None
    except (ValueError, OSError, EOFError) as exc:
        raise RecordError(name, f"not a readable numeric .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
        raise RecordError(name, f"not a numeric array (dtype {getattr(arr, 'dtype', '?')})")
    return arr, None


def _read_csv(path: Path, name: str) -> tuple[np.ndarray, list[str] | None]:
    """One column per lead with a header of lead names (or 12 columns in the order of LEADS)."""
    import pandas as pd

    try:
        with open(path, encoding="utf-8-sig") as f:
            first = f.readline()
    except FileNotFoundError:
        raise RecordError(name, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(name, f"not a readable text CSV ({exc})") from None
    sep = next((s for s in (",", ";", "\t") if s in first), ",")
    has_header = any(not _is_number(cell) for cell in first.strip().split(sep))
    try:
        df = pd.read_csv(path, sep=sep, header=0 if has_header else None, encoding="utf-8-sig",
                         skipinitialspace=True, dtype=str, keep_default_na=False)  # fmt: skip
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RecordError(name, f"not a readable CSV ({str(exc).strip()})") from None
    names = [str(c).strip() for c in df.columns] if has_header else None
    if names is not None:
        keep = [i for i, n in enumerate(names) if n.lower() not in TIME_COLUMNS
                and not n.lower().startswith("unnamed:")]  # fmt: skip
        df, names = df.iloc[:, keep], [names[i] for i in keep]
    if df.shape[0] == 0:
        raise RecordError(name, "the CSV holds no rows of samples")
    if df.shape[1] == 0:
        raise RecordError(name, "the CSV holds no lead columns (only time or unnamed ones)")
    values = df.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & ~df.apply(lambda c: c.str.strip().str.lower() == "nan").to_numpy()
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        column = names[col] if names else f"column {col + 1}"
        cell = str(df.iat[row, col])
        what = "empty cell" if not cell.strip() else f"non-numeric value {cell!r}"
        raise RecordError(name, f"{what} in {column}, line {row + 1 + has_header}")
    return values, names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- finding recordings -----------------------------------------------------------------------


def find_recordings(
    paths: Iterable[str | Path], arrays: bool = False
) -> tuple[list[Path], list[RecordError]]:
    """Expand files, record names and directories (searched recursively) into record paths.

    Directories yield WFDB headers and EDF files, plus .npy and .csv files when ``arrays`` (they
    need a sampling rate). Paths that do not exist come back as errors; duplicates are dropped.
    """
    found: list[Path] = []
    errors: list[RecordError] = []
    patterns = ["*.hea", "*.edf", "*.EDF"] + (["*.npy", "*.csv"] if arrays else [])
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            hits = sorted({h for pattern in patterns for h in p.rglob(pattern) if h.is_file()})
            if not hits:
                kinds = ".hea, .edf" + (", .npy, .csv" if arrays else "")
                errors.append(RecordError(str(p), f"no recordings ({kinds}) in this directory"))
            found.extend(hits)
        elif p.is_file() or p.with_name(p.name + ".hea").is_file():
            found.append(p)
        else:
            errors.append(RecordError(str(p), "no such file, directory or WFDB record"))
    seen: set[str] = set()
    unique = []
    for p in found:
        key = record_name(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, errors


def parse_segment(text: str | None) -> tuple[float | None, float | None] | None:
    """'START:END' in seconds ('2:12', '5:', ':10') -> (start, end); None stays None."""
    if text is None or text == "":
        return None
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, end = (float(v) if v.strip() else None for v in parts)
    except ValueError:
        raise EcgcnnError(
            f"--segment {text!r}: expected START:END in seconds, e.g. 0:10 or 5:"
        ) from None
    if start is not None and end is not None and not 0 <= start < end:
        raise EcgcnnError(f"--segment {text!r}: START must be >= 0 and before END")
    return start, end
