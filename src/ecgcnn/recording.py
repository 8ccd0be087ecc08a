"""Recordings from the wild: WFDB (.dat or CinC-style .mat), EDF, .npy, CSV, device exports
(DICOM waveforms, HL7 aECG, GE MUSE and Philips XML, SCP-ECG: :mod:`ecgcnn.waveforms`) and ISHNE
Holter files (:mod:`ecgcnn.holter`), made model-ready.

Whatever the source, a recording becomes a :class:`Recording`: float32 millivolts, shape
(samples, leads), its leads in the order asked for (matched by name, case-insensitively and by common
aliases), limb leads a device did not store derived from two others, missing leads an error
unless zero-filling is allowed. Every problem with the input is a one-line
:class:`~ecgcnn.errors.RecordError` naming the record.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ecgcnn.cinc import later_matlab, mat_samples, read_later_matlab
from ecgcnn.errors import EcgcnnError, RecordError
from ecgcnn.holter import ISHNE_SUFFIXES, is_ishne, ishne_length, read_ishne
from ecgcnn.mfer import MFER_SUFFIXES, is_mfer, read_mfer
from ecgcnn.records import LEADS, header_units, unit_scale
from ecgcnn.waveforms import (
    DICOM_SUFFIXES,
    SCP_SUFFIXES,
    XML_SUFFIXES,
    is_dicom,
    is_ecg_xml,
    is_scp,
    is_waveform_dicom,
    read_dicom,
    read_scp,
    read_xml,
)

WFDB_SUFFIXES = (".hea", ".dat", ".mat")
ARRAY_SUFFIXES = (".npy", ".csv")
EDF_SUFFIXES = (".edf",)
# Suffixes of single-file recordings (a WFDB record is named without its suffix)
FILE_SUFFIXES = (*ARRAY_SUFFIXES, *EDF_SUFFIXES, *DICOM_SUFFIXES, *XML_SUFFIXES, *SCP_SUFFIXES,
                 *MFER_SUFFIXES, *ISHNE_SUFFIXES)  # fmt: skip
# A lead this flat over the whole segment is a disconnected electrode, not an ECG (the flattest
# lead of the 1,732 PTB-XL development records spans 0.2 mV).
FLAT_MV = 0.005
# Sampling rates accepted (resampling ratios stay exact fractions with denominators <= 1000).
MIN_RATE, MAX_RATE = 10.0, 100_000.0
# Larger than any ECG in millivolts: such values are most likely microvolts labelled as mV (a
# warning for one sample; an error when the typical lead spans this much, 1st to 99th percentile).
IMPLAUSIBLE_MV = 30.0
IMPLAUSIBLE_SPREAD_MV = 100.0
# CSV columns that carry time (with its unit in seconds) and give the sampling rate ...
TIME_COLUMNS = {"t": 1.0, "time": 1.0, "times": 1.0, "time_s": 1.0, "seconds": 1.0, "sec": 1.0,
                "s": 1.0, "elapsed time": 1.0, "elapsedtime": 1.0, "ms": 1e-3, "msec": 1e-3,
                "time_ms": 1e-3, "milliseconds": 1e-3}  # fmt: skip
# ... and those that count samples; both are left out of the leads without a warning.
INDEX_COLUMNS = {"", "sample", "samples", "index", "idx", "n"}
# Limb leads as functions of leads I and II (Einthoven's and Goldberger's equations).
LIMB_LEADS = ("I", "II", "III", "AVR", "AVL", "AVF")


def _lead_aliases() -> dict[str, str]:
    aliases = {lead: lead for lead in LEADS}
    aliases |= {"DI": "I", "DII": "II", "DIII": "III", "D1": "I", "D2": "II", "D3": "III"}
    aliases |= {"VR": "AVR", "VL": "AVL", "VF": "AVF"}
    aliases |= {f"C{k}": f"V{k}" for k in range(1, 7)}  # European chest-lead names
    return aliases


LEAD_ALIASES: dict[str, str] = _lead_aliases()


def canonical_lead(name: object) -> str | None:
    """The standard name (one of LEADS) of a lead label: 'aVR', 'Lead aVR', 'ECG aVR', 'VR' -> 'AVR'.

    Quotes, a trailing unit ('I (mV)') and a 'Lead'/'ECG'/'EKG' prefix (EDF+ labels) are dropped.
    None when the label is not a standard 12-lead name ('MLII', 'ECG1', '-aVR').
    """
    key = re.sub(r"\s*[(\[][^)\]]*[)\]]$", "", str(name).strip().strip("'\""))
    key = re.sub(r"[\s_]", "", key).upper()
    for prefix in ("LEAD", "ECG", "EKG"):
        if key.startswith(prefix) and len(key) > len(prefix):
            key = key[len(prefix) :]
            break
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
    fill_flat: bool = False  # zero-fill flat leads (missing leads allowed) instead of refusing
    units_read: tuple[str, ...] = ()  # the units the samples were taken in, before millivolts
    start_s: float = 0.0  # where its first sample lies in the recording (a segment's start)

    @property
    def duration_s(self) -> float:
        return self.signal.shape[0] / self.fs

    def segment(self, start_s: float | None, end_s: float | None) -> Recording:
        """The part from ``start_s`` to ``end_s`` seconds (None: the record's start / end)."""
        i, j = segment_samples(start_s, end_s, self.signal.shape[0], self.fs, self.name)
        return replace(self, signal=self.signal[i:j], start_s=self.start_s + i / self.fs)

    def validate(self) -> Recording:
        """Refuse NaN/inf samples and flat (disconnected) leads; filled leads are exempt.

        With ``fill_flat`` a flat lead is zero-filled like a missing one (the returned recording
        says so), unless every lead is flat.
        """
        bad = ~np.isfinite(self.signal)
        if bad.any():
            sample = int(np.argmax(bad.any(axis=1)))  # the earliest in time (a lead off)
            column = int(np.argmax(bad[sample]))
            at = self.start_s + sample / self.fs  # in the recording, not in this part of it
            raise RecordError(
                self.name, f"{int(bad.sum())} NaN or infinite sample(s) (first at {at:.3f} s, in "
                f"lead {self.leads[column]})"
            )  # fmt: skip
        if self.signal.shape[0] == 0:
            raise RecordError(self.name, "the recording holds no samples")
        span = np.ptp(self.signal, axis=0)
        flat = [lead for lead, s in zip(self.leads, span, strict=True)
                if s < FLAT_MV and lead not in self.filled_leads]  # fmt: skip
        if flat and len(flat) + len(self.filled_leads) == len(self.leads):
            smaller = [u for u in self.units_read if (unit_scale(u) or 1.0) < 1.0]
            why = (
                f"the samples were read in {', '.join(smaller)} (as --units or its header "
                "says): are those their units?" if smaller
                else "a signal in volts read as millivolts? (--units V, or the units in its header)"
            )  # fmt: skip
            raise RecordError(
                self.name, f"every lead is flat (peak to peak under {FLAT_MV * 1000:g} µV): {why}"
            )
        if flat and self.fill_flat:
            signal = self.signal.copy()
            signal[:, [self.leads.index(lead) for lead in flat]] = 0.0
            note = f"flat lead(s) {', '.join(flat)}: filled with zeros"
            return replace(self, signal=signal, filled_leads=(*self.filled_leads, *flat),
                           warnings=(*self.warnings, note))  # fmt: skip
        if flat:
            raise RecordError(
                self.name,
                f"flat lead(s) {', '.join(flat)} (peak to peak under {FLAT_MV * 1000:g} µV): "
                "disconnected electrode? (--allow-missing-leads fills flat leads with zeros)",
            )
        return self


def segment_samples(
    start_s: float | None, end_s: float | None, samples: int, fs: float, name: str
) -> tuple[int, int]:
    """Sample range [i, j) of ``start_s``-``end_s`` seconds in a recording of ``samples``."""
    duration = samples / fs
    start = 0.0 if start_s is None else float(start_s)
    end = duration if end_s is None else float(end_s)
    if not (0 <= start < end):
        raise RecordError(name, f"segment {start:g}:{end:g} s is empty or starts before 0")
    if end > duration + 0.5 / fs or start >= duration:
        raise RecordError(
            name, f"segment {start:g}:{end:g} s ends after the recording ({duration:g} s)"
        )
    return int(round(start * fs)), int(round(end * fs))


# How a recording's baseline may be treated before scoring: kept as recorded (PTB-XL's leads sit
# near zero: the largest median of a development-data lead is 0.9 mV), each lead's median
# subtracted, or filtered out below HIGHPASS_HZ.
BASELINES = ("keep", "median", "highpass")
HIGHPASS_HZ = 0.5


def check_baseline(how: str) -> str:
    """``how`` if it is one of BASELINES, else the one-line error every command gives."""
    if how not in BASELINES:
        raise EcgcnnError(f"--baseline {how!r}: expected one of {', '.join(BASELINES)}")
    return how


def checkpoint_baseline(meta: Mapping[str, Any]) -> str:
    """How the records a model learnt from had their baseline treated (its checkpoint's or ONNX
    file's ``baseline``; ``keep``, as recorded, for models saved before the setting existed)."""
    return str(meta.get("baseline") or "keep")


def default_baseline(trained: str) -> str:
    """How a recording from elsewhere is treated for a model that learnt ``trained`` baselines:
    as the model learnt, and high-pass filtered for a model that learnt them as recorded (PTB-XL's
    leads sit near zero; other devices' exports need not)."""
    return "highpass" if trained == "keep" else trained


def remove_baseline(signal: np.ndarray, fs: float, how: str) -> np.ndarray:
    """(samples, leads) with each lead's baseline removed: ``median`` subtracts the lead's median
    (a constant offset), ``highpass`` filters out what is slower than HIGHPASS_HZ (offset and
    drift; a zero-phase 2nd-order Butterworth, which also flattens slow ST changes a little);
    ``keep`` returns the signal as it is. A 2-D array with fewer rows than columns is refused: a
    lead-major (leads, samples) array would be filtered along the wrong axis."""
    check_baseline(how)
    shape = tuple(np.shape(signal))
    if len(shape) != 2 or shape[0] < shape[1]:
        why = "fewer samples than leads" if len(shape) == 2 else f"{len(shape)}-D"
        raise EcgcnnError(
            f"remove_baseline: expected a (samples, leads) array, got shape {shape} ({why}): "
            "transpose a lead-major (leads, samples) array (signal.T); a stack of records "
            "(records, leads, samples) takes remove_baseline_records"
        )
    if how == "keep":
        return signal
    if how == "median":
        return (signal - np.median(signal, axis=0)).astype(signal.dtype, copy=False)
    out = np.empty_like(signal)
    for j in range(signal.shape[1]):  # a lead at a time: bounded memory for hours of signal
        out[:, j] = _highpass(signal[:, j], fs, axis=0)
    return out


def remove_baseline_records(
    data: np.ndarray, fs: float, how: str, chunk: int = 256, out: np.ndarray | None = None
) -> np.ndarray:
    """``remove_baseline`` for a stack of records (records, leads, samples), as float32, a chunk of
    records at a time (``data`` may be a memory-mapped cache), into ``out`` when given (a float32
    array of ``data``'s shape, e.g. a memory-mapped file); ``keep`` returns ``data`` itself."""
    if check_baseline(how) == "keep":
        return data
    if out is None:
        out = np.empty(data.shape, dtype=np.float32)
    elif out.shape != data.shape or out.dtype != np.float32:
        raise ValueError(f"out: expected float32 {data.shape}, got {out.dtype} {out.shape}")
    for start in range(0, len(data), chunk):
        x = np.asarray(data[start : start + chunk])
        if how == "median":
            out[start : start + chunk] = x - np.median(x, axis=2, keepdims=True)
        else:
            out[start : start + chunk] = _highpass(x, fs, axis=2)
    return out


def resample_records(
    data: np.ndarray, fs_in: float, fs_out: float, rows: np.ndarray | None = None, chunk: int = 256
) -> np.ndarray:
    """``resample`` for a stack of records (records, leads, samples), the ``rows`` of ``data`` (all
    by default; ``data`` may be a memory-mapped cache), a chunk at a time, as a new float32 array."""
    from scipy.signal import resample_poly

    rows = np.arange(len(data)) if rows is None else np.asarray(rows)
    ratio = _ratio(fs_in, fs_out)
    samples = -(-data.shape[2] * ratio.numerator // ratio.denominator)  # what resample_poly gives
    out = np.empty((len(rows), data.shape[1], samples), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        x = np.asarray(data[rows[start : start + chunk]])
        out[start : start + chunk] = resample_poly(x, ratio.numerator, ratio.denominator, axis=2,
                                                   padtype="line")  # fmt: skip
    return out


class ResampledRecords:
    """A stack of records (records, leads, samples) at ``fs_in`` read as if at ``fs_out``: indexing
    it with row numbers resamples those rows alone, so a scorer that reads batches of rows (such as
    ``evaluate.predict_proba``) never holds the whole root resampled."""

    def __init__(self, data: np.ndarray, fs_in: float, fs_out: float) -> None:
        self.data, self.fs_in, self.fs_out = data, fs_in, fs_out

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return resample_records(self.data, self.fs_in, self.fs_out, np.atleast_1d(rows))


def baseline_signature(how: str, fs: float) -> str:
    """A digest of what ``remove_baseline_records`` makes of a fixed probe record at ``fs`` Hz: a
    cache of treated records is stale when it changes (another filter, another scipy)."""
    t = np.arange(round(10 * fs)) / fs
    probe = (np.arange(1, 13)[:, None] * np.sin(2 * np.pi * 0.2 * t) + 0.3 * np.sin(2 * np.pi * 7 * t)
             + np.linspace(-1, 1, 12)[:, None])  # fmt: skip
    out = remove_baseline_records(probe[None].astype(np.float32), fs, how)
    return hashlib.sha256(np.round(out.astype(np.float64), 5).tobytes()).hexdigest()[:16]


def _highpass(x: np.ndarray, fs: float, axis: int) -> np.ndarray:
    """Zero-phase Butterworth high-pass at HIGHPASS_HZ along ``axis``, each trace first centred on
    its median so that the filter's edges start from near zero."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(2, HIGHPASS_HZ, btype="highpass", fs=fs, output="sos")
    pad = min(x.shape[axis] - 1, round(fs / HIGHPASS_HZ))  # a period of the cut-off: calm edges
    centred = x - np.median(x, axis=axis, keepdims=True)
    return sosfiltfilt(sos, centred, axis=axis, padlen=pad)


def _ratio(fs_in: float, fs_out: float) -> Fraction:
    """fs_out / fs_in as up / down factors for resample_poly."""
    return Fraction(float(fs_out) / float(fs_in)).limit_denominator(1000)


def resampled_length(samples: int, fs_in: float, fs_out: float) -> int:
    """How many samples :func:`resample` makes of ``samples`` at ``fs_in``: ceil(samples * up / down)."""
    if fs_in == fs_out:
        return int(samples)
    ratio = _ratio(fs_in, fs_out)
    return -(-int(samples) * ratio.numerator // ratio.denominator)


def resample(signal: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Resample (samples, leads) from ``fs_in`` to ``fs_out`` Hz with an anti-aliasing polyphase FIR.

    scipy's resample_poly low-passes at the lower Nyquist rate (Kaiser window, as PTB-XL's own
    100 Hz records were made); 'line' padding keeps a baseline offset from ringing at the edges.
    """
    from scipy.signal import resample_poly

    if fs_in == fs_out:
        return signal
    ratio = _ratio(fs_in, fs_out)
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
        raise RecordError(name, f"lead(s) {', '.join(dup)} appear more than once in {_some(names)}")
    found = {c: i for i, c in enumerate(canon) if c is not None}
    wanted = [canonical_lead(lead) or lead for lead in leads]

    converted: dict[str, np.ndarray] = {}

    def millivolts(lead: str) -> np.ndarray:
        if lead not in converted:
            i = found[lead]
            scale = unit_scale(unit_list[i])
            if scale is None:
                warn.append(f"unknown unit {unit_list[i]!r} of lead {names[i]}: taken as mV")
                scale = 1.0
            with np.errstate(over="ignore"):  # beyond float range: inf, which validate() reports
                converted[lead] = arr[:, i] * scale
        return converted[lead]

    columns = {c: millivolts(c) for c in wanted if c in found}
    derived, basis = _derive_limb_leads(
        [c for c in wanted if c not in found], set(found), millivolts
    )
    if derived:
        warn.append(f"lead(s) {', '.join(derived)} derived from {basis}")
        columns |= derived
    missing = [lead for lead, c in zip(leads, wanted, strict=True) if c not in columns]
    ambulatory = [n for n in names if _is_ambulatory(n)]
    if missing and ambulatory:
        raise RecordError(
            name,
            f"not a 12-lead ECG: {', '.join(ambulatory)} is a modified ambulatory lead "
            f"(leads: {_some(names)})",
        )
    if missing and not allow_missing_leads:
        raise RecordError(
            name,
            f"missing lead(s) {', '.join(missing)}; has {_some(names)} "
            "(--allow-missing-leads fills missing leads with zeros)",
        )
    if len(missing) == len(leads):
        raise RecordError(name, f"none of the leads {', '.join(names)} is a standard 12-lead name")
    ignored = [n for n, c in zip(names, canon, strict=True) if c is None or c not in wanted]
    if ignored:
        warn.append(f"ignored channel(s) {_some(ignored)}")
    out = np.zeros((arr.shape[0], len(leads)), dtype=np.float32)
    with np.errstate(over="ignore"):  # beyond float32: inf, which validate() reports
        for j, c in enumerate(wanted):
            if c in columns:
                out[:, j] = columns[c]
    if missing:
        warn.append(f"lead(s) {', '.join(missing)} missing: filled with zeros")
    used = sorted({str(unit_list[found[c]]).strip() for c in columns if c in found})
    _check_amplitudes(out[:, [j for j, c in enumerate(wanted) if c in columns]], name, warn, used)
    return Recording(
        name, out, fs, leads, tuple(missing), tuple(warn), allow_missing_leads, tuple(used)
    )


def _some(names: Sequence[str], most: int = 16) -> str:
    """A file's channel names for an error line: the first ``most``, and how many more."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def _derive_limb_leads(
    missing: Sequence[str], present: set[str], millivolts: Callable[[str], np.ndarray]
) -> tuple[dict[str, np.ndarray], str]:
    """The missing limb leads computed from two of I, II, III, and which two ('I and II').

    Devices store 8 leads (I, II, V1-V6) and compute the other four this way. Nothing when no
    limb lead is missing or fewer than two of I, II, III are there.
    """
    need = [c for c in missing if c in LIMB_LEADS]
    have = [c for c in ("I", "II", "III") if c in present]
    if not need or len(have) < 2:
        return {}, ""
    a, b = (millivolts(c).astype(np.float64) for c in have[:2])
    lead_i, lead_ii = {("I", "II"): (a, b), ("I", "III"): (a, a + b), ("II", "III"): (a - b, a)}[
        (have[0], have[1])
    ]
    formulas = {
        "I": lambda: lead_i,
        "II": lambda: lead_ii,
        "III": lambda: lead_ii - lead_i,
        "AVR": lambda: -(lead_i + lead_ii) / 2,
        "AVL": lambda: lead_i - lead_ii / 2,
        "AVF": lambda: lead_ii - lead_i / 2,
    }
    return {c: formulas[c]() for c in need}, f"{have[0]} and {have[1]}"


def _check_amplitudes(
    signal: np.ndarray, name: str, warn: list[str], units: Sequence[str] = ("mV",)
) -> None:
    """Refuse a recording whose typical amplitude no ECG in millivolts has (read in ``units``);
    warn on a lone spike."""
    finite = np.where(np.isfinite(signal), signal, np.nan)  # NaNs: validate() reports them
    if finite.size == 0 or np.isnan(finite).all(axis=0).any():
        return
    low, high = np.nanpercentile(finite, [1, 99], axis=0)
    spread = float(np.median(high - low))  # of the typical lead, blind to offsets and lone spikes
    if spread > IMPLAUSIBLE_SPREAD_MV:
        larger = [u for u in units if (unit_scale(u) or 1.0) > 1.0]
        why = (
            f"the samples were read in {', '.join(larger)} (as --units or its header says): are "
            "those their units? (--units mV or uV for .npy or CSV)" if larger
            else "is the signal in microvolts? (--units uV for .npy or CSV; a file that gives its "
            "units is read in them: check its header)"
        )  # fmt: skip
        raise RecordError(name, f"leads span about {spread:.0f} mV, far beyond any ECG: {why}")
    peak = float(np.nanmax(np.abs(finite)))
    if peak > IMPLAUSIBLE_MV:
        warn.append(f"amplitudes up to {peak:.0f} mV: an artefact, or the signal in microvolts?")


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
    """'wfdb', 'edf', 'npy', 'csv', 'dicom', 'xml', 'scp', 'mfer' or 'ishne' by suffix (a name
    without suffix is a WFDB record name); a file of another suffix that starts like a DICOM file
    is 'dicom'. A .ecg file is 'ishne' whatever it holds: its reader refuses other vendors' .ecg
    formats.
    """
    suffix = path.suffix.lower()
    header = path.name not in ("", "..") and path.with_name(path.name + ".hea").is_file()
    if suffix in WFDB_SUFFIXES or header:
        return "wfdb"
    if path.is_dir():  # '.' has no name to look a header up by
        raise RecordError(str(path), "a directory, not a recording file (predict reads folders)")
    if suffix in EDF_SUFFIXES:
        return "edf"
    if suffix in ARRAY_SUFFIXES:
        return suffix[1:]
    if suffix in DICOM_SUFFIXES or is_dicom(path):  # archives name DICOM files by UID, no suffix
        return "dicom"
    if suffix in XML_SUFFIXES:
        return "xml"
    if suffix in SCP_SUFFIXES:
        return "scp"
    if suffix in MFER_SUFFIXES:
        return "mfer"
    if suffix in ISHNE_SUFFIXES:
        return "ishne"
    if not suffix and not path.exists():  # a record's name whose header is not there
        raise RecordError(str(path), "no such file, directory or WFDB record (NAME.hea)")
    raise RecordError(
        str(path),
        f"unsupported file type {suffix or '(none)'}; expected a WFDB record (.hea with .dat or "
        ".mat), .edf, .npy, .csv, DICOM waveform (.dcm), ECG XML (HL7 aECG, GE MUSE, Philips, "
        "Mortara ELI), SCP-ECG (.scp), MFER (.mwf) or ISHNE Holter (.ecg)",
    )


def record_name(path: str | Path) -> str:
    """The name a record is reported under: WFDB records without their extension."""
    p = Path(path)
    return str(p.with_suffix("")) if p.suffix.lower() in WFDB_SUFFIXES else str(p)


def record_length(path: str | Path, fs: float | None = None) -> tuple[int, float] | None:
    """Samples per lead and rate as the header says, without reading a sample: WFDB records (at
    ``fs`` when the header gives no rate; the length of a MATLAB v5/v7 ``val`` from its matrix
    header when the WFDB header leaves it out) and ISHNE Holter files. None for other formats, or
    a header that does not say (reading the record tells what is wrong with it)."""
    p = Path(path)
    try:
        kind = record_kind(p)
        if kind == "ishne":
            return ishne_length(p)
        if kind != "wfdb" or (p.suffix.lower() == ".mat" and not p.with_suffix(".hea").is_file()):
            return None
        import wfdb

        name = record_name(p)
        header = wfdb.rdheader(name)
        lines = _header_lines(name)
        rate = float(header.fs) if _gives_rate(lines) else fs
        length = header.sig_len
        if not length:  # WFDB lets a header leave it out: a MATLAB file's matrix says it
            mat = later_matlab(name, lines)
            length = mat_samples(name, mat) if mat is not None else None
    except Exception:  # any damage: the full read reports it
        return None
    if not length or not rate or rate <= 0:
        return None
    return int(length), float(rate)


def read_recording(
    path: str | Path,
    leads: Sequence[str] = LEADS,
    fs: float | None = None,
    units: str = "mV",
    allow_missing_leads: bool = False,
    segment: tuple[float | None, float | None] | None = None,
) -> Recording:
    """Read a recording in any supported format as a :class:`Recording` in ``leads`` order.

    ``segment`` (start, end) in seconds keeps only that part; of a WFDB record or an ISHNE Holter
    file only that part is read from disk, so a minute of a day-long recording costs a minute's
    memory.

    ``fs`` and ``units`` are for what the file does not say: the rate of a .npy file, or of a CSV
    without a time column, or of a WFDB header without one; the units of .npy and CSV files
    (WFDB and EDF headers, and PhysioNet's CSV exports, carry their own). What the file says wins,
    with a warning when ``fs`` or ``units`` contradict it.
    """
    p = Path(path)
    kind = record_kind(p)
    name = record_name(p)
    warn: list[str] = []
    file_units: list[str] | None = None
    if kind == "npy":
        (signal, names), rate = _read_npy(p, name), None
    elif kind == "csv":
        signal, names, rate, file_units = _read_csv(p, name, fs, warn)
    elif kind == "dicom":
        signal, rate, names, file_units = read_dicom(p, name)
    elif kind in ("xml", "scp", "mfer"):
        reader = {"xml": read_xml, "scp": read_scp, "mfer": read_mfer}[kind]
        signal, rate, names, file_units = reader(p, name, warn)
    elif kind == "ishne":
        signal, rate, names, file_units = read_ishne(p, name, warn, segment)
    else:
        if p.suffix.lower() == ".mat" and not p.with_suffix(".hea").is_file():
            raise RecordError(
                name,
                "a .mat recording needs its WFDB header (.hea), as in the PhysioNet/CinC releases",
            )
        signal, rate, names, file_units = (
            _read_wfdb(name, segment, fs, warn) if kind == "wfdb" else _read_edf(p, name, warn)
        )  # fmt: skip
    where = {"wfdb": "the header", "edf": "the header", "csv": "the time column",
             "dicom": "the file", "xml": "the file", "scp": "the file", "mfer": "the file",
             "ishne": "the file"}.get(kind, "")  # fmt: skip
    if rate is None:
        if fs is None:
            problem = (
                "the header gives no sampling rate (WFDB readers would assume 250 Hz)"
                if kind == "wfdb" else f"a .{kind} file has no sampling rate"
            )  # fmt: skip
            raise RecordError(name, f"{problem}: give it (--fs HZ)")
        rate = fs
    elif fs is not None and abs(float(fs) - rate) > 1e-3 * rate:
        warn.append(f"{where} says {rate:g} Hz: --fs {fs:g} ignored")
    if file_units is not None and units != "mV":
        warn.append(f"{where.replace('the time column', 'the file')} gives the units: "
                    f"--units {units} ignored")  # fmt: skip
    unit_list = units if file_units is None else file_units
    if segment is not None and kind not in ("wfdb", "ishne"):  # those two cut it at read time
        i, j = segment_samples(*segment, signal.shape[0], rate, name)
        signal = signal[i:j]
    rec = conform(signal, rate, names, name, leads, unit_list, allow_missing_leads, warn)
    return replace(rec, start_s=float(segment[0] or 0.0)) if segment is not None else rec


def _read_wfdb(
    name: str,
    segment: tuple[float | None, float | None] | None = None,
    fs: float | None = None,
    warn: list[str] | None = None,
) -> tuple[np.ndarray, float | None, list[str], list[str]]:
    """Signal (samples, channels), rate (None when the header gives none), names, units.

    With ``segment``, only its samples are read (at the header's rate, else ``fs``). Leads the
    header leaves uncalibrated (gain 0) are said in ``warn``.
    """
    import wfdb

    sampfrom, sampto = 0, None
    lines = _header_lines(name)
    if lines == []:
        raise RecordError(name, "the header is empty (no record line)")
    has_rate = _gives_rate(lines)
    if lines and "/" not in lines[0][0]:  # one segment: its signal lines follow
        declared = lines[0][1] if len(lines[0]) > 1 else ""
        if declared.isdigit() and int(declared) > len(lines) - 1:
            raise RecordError(
                name, f"the header declares {declared} signals and describes {len(lines) - 1}"
            )
        if len(lines[0]) > 3 and lines[0][3] == "0":
            raise RecordError(
                name, "the header says 0 samples (a multi-segment record's layout header? "
                "read the record by its own name)"
            )  # fmt: skip
        uncalibrated = [parts[8] if len(parts) > 8 else f"signal {i}"
                        for i, parts in enumerate(lines[1:], 1) if _gain(parts) == 0]  # fmt: skip
        if uncalibrated and warn is not None:
            warn.append(f"lead(s) {_some(uncalibrated)} uncalibrated (ADC gain 0 in the header): "
                        "read at 200 units per mV, wfdb's default")  # fmt: skip
    try:
        if segment is not None:
            header = wfdb.rdheader(name)
            rate = header.fs if has_rate else fs
            if rate is not None and header.sig_len:
                sampfrom, sampto = segment_samples(*segment, header.sig_len, rate, name)
        mat = later_matlab(name, lines) if lines else None
        if mat is None:
            signal, fields = wfdb.rdsamp(name, sampfrom=sampfrom, sampto=sampto)
        else:  # a CinC .mat re-saved by MATLAB or scipy: its 'val', not the header's byte offset
            signal, fields = read_later_matlab(name, mat, sampfrom, sampto)
    except FileNotFoundError as exc:
        missing = Path(exc.filename or name)
        if missing.suffix == ".hea":
            there = [
                f.name for f in missing.parent.glob("*") if f.name.lower() == missing.name.lower()
            ]
            hint = f" ({there[0]} is there: wfdb reads NAME.hea in lower case)" if there else ""
            raise RecordError(name, f"header {missing.name} not found{hint}") from None
        ascii_only = "" if all(p[0].isascii() for p in lines or []) else (
            " (wfdb reads the header's file names in ASCII only: rename the record's files)")  # fmt: skip
        raise RecordError(
            name, f"signal file {missing.name} named in the header not found{ascii_only}"
        ) from None
    except RecordError:
        raise
    except Exception as exc:  # wfdb raises many types on corrupt input
        problem = _truncation(name) or f"unreadable WFDB record ({type(exc).__name__}: {exc})"
        raise RecordError(name, problem) from None
    expected = fields.get("sig_len") if sampto is None else sampto - sampfrom
    if signal is None or signal.ndim != 2 or (expected is not None and signal.shape[0] != expected):
        shape = None if signal is None else signal.shape
        problem = (
            _truncation(name) or f"signal has shape {shape}, the header says {expected} samples"
        )
        raise RecordError(name, problem)
    units = header_units(name, fields.get("units") or ["mV"] * signal.shape[1])
    rate = float(fields["fs"]) if has_rate else None
    if segment is not None and sampto is None and (rate or fs):  # a header without a length
        i, j = segment_samples(*segment, signal.shape[0], float(rate or fs), name)  # type: ignore[arg-type]
        signal = signal[i:j]
    names = [f"signal {i}" if n is None else str(n) for i, n in enumerate(fields["sig_name"], 1)]
    if all(n is None for n in fields["sig_name"]):
        raise RecordError(
            name, "the header names no leads (the description at the end of each signal line)"
        )
    return signal, rate, names, units


def _gain(parts: list[str]) -> float | None:
    """The ADC gain of a WFDB signal line (split), None when it gives none."""
    found = re.match(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", parts[2]) if len(parts) > 2 else None
    return float(found.group()) if found else None


def _gives_rate(lines: list[list[str]] | None) -> bool:
    """Whether a WFDB header's record line has a sampling-rate field (wfdb fills in 250 if not)."""
    return lines is None or (len(lines) > 0 and len(lines[0]) >= 3)  # None: wfdb read it


def _header_lines(name: str) -> list[list[str]] | None:
    """A WFDB header's lines, split into fields, comments left out; None if it cannot be read."""
    try:
        with open(f"{name}.hea", encoding="latin-1") as f:
            return [
                line.split() for line in f if line.strip() and not line.lstrip().startswith("#")
            ]
    except OSError:
        return None


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


def _read_edf(
    path: Path, name: str, warn: list[str] | None = None
) -> tuple[np.ndarray, float, list[str], list[str]]:
    """EDF / EDF+C, 16-bit: the channels at the rate of the ECG leads (the highest rate of those
    named as leads, else of all; annotations are skipped, others said in ``warn``).

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
    is_lead = is_ecg & np.array([canonical_lead(label) is not None for label in fields["label"]])
    rate = samples[is_lead if is_lead.any() else is_ecg].max()
    keep = np.flatnonzero(is_ecg & (samples == rate))
    other = np.flatnonzero(is_ecg & (samples != rate))
    if len(other) and warn is not None:
        rates = ", ".join(f"{r / duration:g}" for r in sorted(set(samples[other]), reverse=True))
        warn.append(f"ignored channel(s) {_some([fields['label'][i] for i in other])} "
                    f"(sampled at {rates} Hz, the leads at {rate / duration:g} Hz)")  # fmt: skip
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
        _check_npy_size(path, name)
        arr = np.load(path, allow_pickle=False)  # never unpickle objects from a data file
    except FileNotFoundError:
        raise RecordError(name, "file not found") from None
    except MemoryError:
        size = Path(path).stat().st_size
        raise RecordError(name, f"a .npy array of {size:,} bytes is too large for this machine's "
                          "memory") from None  # fmt: skip
    except (ValueError, OSError, EOFError) as exc:
        if "pickle" in str(exc):  # numpy's words for any non-.npy file, with a hint not to follow
            raise RecordError(name, "not a NumPy .npy file (nor is it unpickled: ecgcnn never "
                              "loads Python objects from data)") from None  # fmt: skip
        raise RecordError(name, f"not a readable numeric .npy array ({exc})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
        raise RecordError(name, f"not a numeric array (dtype {getattr(arr, 'dtype', '?')})")
    return arr, None


def _check_npy_size(path: Path, name: str) -> None:
    """Refuse a .npy whose header promises more samples than the file holds, before numpy
    allocates them (a damaged or crafted header can ask for terabytes)."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
        except ValueError:
            return  # not .npy at all: np.load says so
        try:
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)  # fmt: skip
            shape, _, dtype = read(f)
        except (ValueError, SyntaxError, UnicodeDecodeError):
            return  # np.load gives the header's problem
        data = Path(path).stat().st_size - f.tell()
    if dtype.hasobject:
        raise RecordError(name, "not a readable numeric .npy array (it holds Python objects, "
                          "which ecgcnn never unpickles)")  # fmt: skip
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need > data:
        raise RecordError(
            name, f"the header promises {shape} {dtype} ({need:,} bytes) but the file holds "
            f"{data:,} bytes of data: truncated or damaged"
        )  # fmt: skip


def _read_csv(
    path: Path, name: str, fs: float | None = None, warn: list[str] | None = None
) -> tuple[np.ndarray, list[str] | None, float | None, list[str] | None]:
    """One column per lead with a header of lead names (or 12 columns in the order of LEADS).

    Also read: a time column (its rate is returned), a row of units under the header (PhysioNet's
    exports: ``'Elapsed time','I',...`` then ``'seconds','mV',...``), ``;`` or tab separators with
    decimal commas. Returns the values, the lead names, the rate (None without a time column) and
    the units (None without a units row).
    """
    import pandas as pd

    try:
        with open(path, encoding="utf-8-sig") as f:
            head = [f.readline() for _ in range(200)]  # a header, a units row, samples
    except FileNotFoundError:
        raise RecordError(name, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(name, f"not a readable text CSV ({exc})") from None
    first = head[0]
    sep = next((s for s in ("\t", ";") if s in first), ",")
    comma = sep != "," and re.search(r"\d,\d", "".join(head)) is not None  # decimal commas
    has_header = any(not _is_number(cell.replace(",", ".") if comma else cell)
                     for cell in first.strip().split(sep))  # fmt: skip
    try:
        df = pd.read_csv(path, sep=sep, header=0 if has_header else None, encoding="utf-8-sig",
                         skipinitialspace=True, dtype=str, keep_default_na=False)  # fmt: skip
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RecordError(name, f"not a readable CSV ({str(exc).strip()})") from None
    df = df.apply(lambda c: c.str.strip().str.strip("'\""))
    if comma:
        df = df.apply(lambda c: c.str.replace(",", ".", regex=False))
    names = [str(c).strip().strip("'\"") for c in df.columns] if has_header else None
    units = None
    if names is not None and len(df) and all(unit_scale(u) is not None or u.lower() in
                                             TIME_UNITS for u in df.iloc[0]):  # fmt: skip
        units, df = [str(u) for u in df.iloc[0]], df.iloc[1:]
    rate = None
    if names is not None:
        kinds = [_column_kind(n, units[i] if units else None) for i, n in enumerate(names)]
        time = next((i for i, k in enumerate(kinds) if k not in ("lead", "index")), None)
        if time is not None:
            try:
                rate = _rate_from_times(df.iloc[:, time], kinds[time], name, fs)
            except TimeGap as gap:
                if fs is None:
                    raise
                if warn is not None:
                    warn.append(f"{gap.problem}: read at --fs {fs:g} Hz")
        keep = [i for i, k in enumerate(kinds) if k == "lead"]
        df, names = df.iloc[:, keep], [names[i] for i in keep]
        units = [units[i] for i in keep] if units else None
    if df.shape[0] == 0:
        raise RecordError(name, "the CSV holds no rows of samples")
    if df.shape[1] == 0:
        raise RecordError(name, "the CSV holds no lead columns (only time or unnamed ones)")
    values = df.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & ~df.apply(lambda c: c.str.lower() == "nan").to_numpy()
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        column = names[col] if names else f"column {col + 1}"
        cell = str(df.iat[row, col])
        what = "empty cell" if not cell else f"non-numeric value {cell!r}"
        line = row + 1 + has_header + (units is not None)
        raise RecordError(name, f"{what} in {column}, line {line}")
    return values, names, rate, units


# Units of a time column (as a PhysioNet export's units row gives them), in seconds; "clock" is
# elapsed time written as [h:]m:s.
TIME_UNITS: dict[str, float | str] = {"seconds": 1.0, "sec": 1.0, "s": 1.0, "ms": 1e-3,
                                       "msec": 1e-3, "hh:mm:ss.mmm": "clock"}  # fmt: skip


def _column_kind(column: str, unit: str | None) -> float | str:
    """A CSV column's role: its time unit in seconds (or 'clock'), 'index' or 'lead'."""
    key = column.strip().lower()
    paren = re.fullmatch(r"(.*?)\s*[(\[]\s*(\w+)\s*[)\]]", key)  # 'Time (s)', 'time [ms]'
    if paren and paren.group(1) in TIME_COLUMNS and paren.group(2) in TIME_UNITS:
        key, unit = paren.group(1), paren.group(2)
    if key in TIME_COLUMNS:
        return TIME_UNITS.get((unit or "").lower(), TIME_COLUMNS[key])  # type: ignore[return-value]
    if key in INDEX_COLUMNS or key.startswith("unnamed:"):
        return "index"
    return "lead"


def _rate_from_times(
    column: object, unit: float | str, name: str, fs: float | None = None
) -> float | None:
    """Samples per second of an evenly increasing time column; None if it is not one, or if its
    times are too coarse to tell the rate (then ``fs`` gives it, or is asked for). A time column
    with a gap raises :class:`TimeGap`. ``fs`` within what the times allow is taken as the rate."""
    import pandas as pd

    cells = pd.Series(column, dtype=str).str.strip()
    clock = unit == "clock" or (len(cells) and ":" in cells.iloc[0])  # [h:]m:s
    if clock:

        def seconds(text: str) -> float:
            value = 0.0
            for part in text.split(":"):
                value = value * 60 + float(part)
            return value

        try:
            t = np.array([seconds(c) for c in cells], dtype=np.float64)
        except ValueError:
            return None
    else:
        t = pd.to_numeric(cells, errors="coerce").to_numpy(dtype=np.float64) * float(unit)
    if len(t) < 2 or not np.isfinite(t).all() or (np.diff(t) < 0).any() or t[-1] <= t[0]:
        return None
    # The times' resolution: the finest digit any cell writes (its decimals, less its exponent).
    numbers = cells.str.rsplit(":", n=1).str[-1] if clock else cells
    parts = numbers.str.extract(r"^[+-]?\d*(?:\.(\d*))?(?:[eE]([+-]?\d+))?$")
    digits = parts[0].fillna("").str.len() - pd.to_numeric(parts[1], errors="coerce").fillna(0)
    resolution = 10.0 ** -float(digits.max()) * (1.0 if clock else float(unit))
    span, steps = t[-1] - t[0], len(t) - 1
    rate = steps / span  # end to end: rounding moves it by at most the resolution over the span
    # Rounded times stray from the line t0 + i / rate by half their resolution at most; a gap (a
    # jump of the clock) moves a whole stretch off it, by a step or more.
    off = np.abs(t - (t[0] + np.arange(len(t)) / rate))
    if off.max() > resolution + 1.0 / rate:
        step = float(np.median(np.diff(t)))
        k = int(np.argmax(np.abs(np.diff(t) - step)))  # the step furthest from the others
        raise TimeGap(name, f"the time column is not evenly spaced: it goes from {t[k]:g} s to "
                      f"{t[k + 1]:g} s (after {k + 1} samples), against steps of {step:.4g} s "
                      "elsewhere; a recording with gaps has no single rate")  # fmt: skip
    low, high = steps / (span + resolution), steps / max(span - resolution, resolution)
    if fs is not None and low <= fs <= high:
        return float(fs)  # what the user said, and the times agree
    whole = np.arange(np.ceil(low), np.floor(high) + 1)
    if len(whole) == 1:
        return float(whole[0])
    if len(whole) == 0 and high - low <= 1e-3 * rate:  # a rate of no whole number (333.333 Hz)
        return rate
    return None  # times too coarse to tell: --fs gives the rate


class TimeGap(RecordError):
    """A CSV time column that jumps: no single rate (``--fs`` overrides it, with a warning)."""


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

    Directories yield WFDB headers, EDF and SCP-ECG files, ISHNE Holter files (.ecg and .ishne
    starting with the ISHNE magic number; other vendors' .ecg files are passed over), DICOM waveform files (.dcm, .dicom, or
    named without a suffix or by UID as on DICOM media, told by their preamble; images are passed
    over) and the
    XML files whose root element is an ECG export read here (other XML is not a recording, so it
    is passed over), plus .npy and .csv files when ``arrays`` (they need a sampling rate). Paths
    that do not exist come back as errors; duplicates are dropped.
    """
    found: list[Path] = []
    errors: list[RecordError] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = _walk(p)
            upper = [h for h in files if h.suffix.lower() == ".hea" and h.suffix != ".hea"
                     and not h.with_suffix(".hea").is_file()]  # fmt: skip
            errors.extend(RecordError(str(h), "WFDB headers are read as NAME.hea, in lower case: "
                                      f"rename it {h.stem}.hea") for h in upper)  # fmt: skip
            hits = sorted(h for h in files if _is_recording(h, arrays))
            segments = {s for h in hits if h.suffix == ".hea" for s in _segments(h)}
            hits = [h for h in hits if h not in segments]  # read through their record's header
            if not hits and not upper:
                kinds = ".hea, .edf, DICOM, ECG .xml, .scp, .mwf, ISHNE .ecg"
                kinds += ", .npy, .csv" if arrays else ""
                problem = f"no recordings ({kinds}) in this directory"
                unread = 0 if arrays else sum(h.suffix.lower() in ARRAY_SUFFIXES for h in files)
                if unread:
                    problem += f"; {unread} .npy/.csv file(s) need a sampling rate (--fs HZ)"
                errors.append(RecordError(str(p), problem))
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


def _walk(top: Path) -> list[Path]:
    """Every file under ``top``, in folders linked in too, each real folder once (no cycles)."""
    files: list[Path] = []
    seen: set[str] = set()
    for root, dirs, names in os.walk(top, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        files.extend(p for p in (Path(root, n) for n in names) if p.is_file())
    return files


def _segments(header: Path) -> list[Path]:
    """The headers of the segments a multi-segment record's header names (none for a record of
    one segment: only its first line is read)."""
    try:
        with open(header, encoding="latin-1") as f:
            first = next(
                (line.split() for line in f if line.strip() and line.lstrip()[0] != "#"), []
            )
            if not first or "/" not in first[0]:
                return []
            names = [line.split()[0] for line in f if line.strip() and line.lstrip()[0] != "#"]
    except OSError:
        return []
    # a name that is no file name (a path, a bare '/' of a damaged header) is no segment of this
    # folder: the record's own read says what is wrong with it
    return [header.with_name(f"{n}.hea") for n in names
            if n != "~" and "/" not in n and "\\" not in n and n not in ("", ".", "..")]  # fmt: skip


def _is_recording(path: Path, arrays: bool) -> bool:
    """Whether a file found in a directory is a recording to read (a WFDB record by its header)."""
    if path.suffix == ".hea":  # as wfdb names it: it reads NAME + '.hea', lower case
        return True
    suffix = path.suffix.lower()
    if suffix in EDF_SUFFIXES:
        return True
    if suffix in SCP_SUFFIXES:
        return is_scp(path)  # a dial-up script named .scp is no recording: passed over
    if suffix in MFER_SUFFIXES:
        return is_mfer(path)
    if suffix in ISHNE_SUFFIXES:
        return is_ishne(path)  # other vendors' .ecg formats and ISHNE annotation files are not
    if suffix in XML_SUFFIXES:
        return is_ecg_xml(path)  # other XML (build files, settings) is not a recording
    if suffix in ARRAY_SUFFIXES:
        return arrays
    # DICOM media name files IM000001 or by UID (1.2.840.113619.2.1.1): judged by their preamble;
    # image slices beside the ECGs are passed over, as other XML is
    if suffix in DICOM_SUFFIXES or ((suffix == "" or suffix[1:].isdigit()) and is_dicom(path)):
        return is_waveform_dicom(path)
    return False


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
