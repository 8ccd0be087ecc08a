"""Holter recordings in the ISHNE standard output format (Badilini F., "The ISHNE Holter Standard
Output File Format", Ann Noninvasive Electrocardiol 1998;3(3):263-266), such as THEW's 12-lead
1000 Hz 24-hour recordings.

A file is the magic number ``ISHNE1.0``, the CRC-16-CCITT of its header, a fixed header of 512
bytes, a variable block, then 16-bit samples interleaved by lead, all little-endian. A 24-hour
12-lead file at 1000 Hz is about 2 GB: only the samples asked for (a segment) are read from disk,
and the size limit of the device exports does not apply.

:func:`read_ishne` returns what :func:`ecgcnn.recording.read_recording` needs from any file. Every
problem is a one-line :class:`~ecgcnn.errors.RecordError` naming the file; a CRC mismatch is a
warning (the samples are not covered by it).
"""

from __future__ import annotations

import binascii
import struct
from pathlib import Path

import numpy as np

from ecgcnn.errors import RecordError
from ecgcnn.waveforms import file_head

ISHNE_SUFFIXES = (".ecg", ".ishne")
MAGIC = b"ISHNE1.0"
ANNOTATION_MAGIC = b"ANN  1.0"
# Magic (8) and CRC (2), then the fixed header: variable-block size, samples per lead, offsets of
# the variable and ECG blocks, file version, first and last name, ID, sex, race, birth, record and
# file dates, start time, lead count, lead codes, lead quality, resolution (nV per bit) of 12
# leads, pacemaker code, recorder type, sampling rate, proprietary, copyright, reserved.
FIXED_HEADER = struct.Struct("<iiiih40s40s20shh3h3h3h3hh12h12h12hh40sh80s80s88s")
HEADER_BYTES = 10 + FIXED_HEADER.size  # 522: where the variable block starts
MISSING = -32768  # a sample the recorder lost
MAX_CRC_BLOCK = 1 << 20  # a variable block up to this size is read to check the header's CRC
# ISHNE lead specification codes; 0 (unknown) and 1 (generic bipolar) name no lead of a 12-lead ECG.
LEAD_CODES = {-9: "absent", 0: "unknown", 1: "bipolar", 2: "X", 3: "Y", 4: "Z", 5: "I", 6: "II",
              7: "III", 8: "aVR", 9: "aVL", 10: "aVF", 11: "V1", 12: "V2", 13: "V3", 14: "V4",
              15: "V5", 16: "V6", 17: "ES", 18: "AS", 19: "AI"}  # fmt: skip
TWELVE_LEAD_CODES = range(5, 17)


def is_ishne(path: Path) -> bool:
    """Whether a file starts with the ISHNE Holter magic number (other vendors name files .ecg)."""
    return file_head(path, len(MAGIC)) == MAGIC


def ishne_length(path: Path) -> tuple[int, float] | None:
    """Samples per lead and rate from an ISHNE header, or None if the file does not give them."""
    head = file_head(path, HEADER_BYTES)
    if head is None or len(head) < HEADER_BYTES or head[:8] != MAGIC:
        return None
    fields = FIXED_HEADER.unpack_from(head, 10)
    samples, rate = fields[1], fields[61]
    return (samples, float(rate)) if samples > 0 and rate > 0 else None


def read_ishne(
    path: Path,
    name: str,
    warn: list[str] | None = None,
    segment: tuple[float | None, float | None] | None = None,
) -> tuple[np.ndarray, float, list[str], list[str]]:
    """An ISHNE Holter file's samples (float32 mV, (samples, leads)), rate, lead names and units.

    With ``segment`` (start, end) in seconds only those samples are read from disk. A file
    shorter than its header says is an error, even when the segment lies in the part that is
    there: its header cannot be trusted.
    """
    from ecgcnn.recording import segment_samples

    if path.exists() and not path.is_file():  # a named pipe would block the read
        raise RecordError(name, "not a regular file: expected an ISHNE Holter file")
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
            if head[:8] != MAGIC:
                raise RecordError(name, _magic_problem(head))
            if len(head) < HEADER_BYTES:
                raise RecordError(
                    name,
                    f"ISHNE header cut short: {len(head)} bytes, the header needs {HEADER_BYTES}",
                )
            fields = FIXED_HEADER.unpack_from(head, 10)
            var_size, samples, var_offset, ecg_offset = fields[:4]
            size = f.seek(0, 2)
            _check_layout(var_size, samples, var_offset, ecg_offset, size, name)
            # the CRC covers the header and the variable block; a block past 1 MiB is not read
            crc: int | None = None
            if var_size <= MAX_CRC_BLOCK:
                f.seek(HEADER_BYTES)
                crc = binascii.crc_hqx(f.read(var_size), binascii.crc_hqx(head[10:], 0xFFFF))
            # after 4 sizes and offsets, version, 3 names, sex, race and 4 dates of 3 numbers
            n_leads, codes, resolutions, rate = fields[22], fields[23:35], fields[47:59], fields[61]
            if not 1 <= n_leads <= 12:
                raise RecordError(name, f"ISHNE lead count {n_leads}: expected 1 to 12")
            names = _lead_names(codes[:n_leads])
            for k, res in enumerate(resolutions[:n_leads]):
                if res <= 0:
                    raise RecordError(
                        name, f"ISHNE amplitude resolution {res} nV of lead {k + 1} ({names[k]}): "
                        "expected a positive number of nanovolts per bit",
                    )  # fmt: skip
            if rate <= 0:
                raise RecordError(name, f"ISHNE sampling rate {rate} Hz: expected a positive rate")
            frame = 2 * n_leads
            need = ecg_offset + samples * frame
            if size < need:
                raise RecordError(
                    name, f"ISHNE file holds {size} bytes, its header needs {need} (truncated?)"
                )
            if not any(code in TWELVE_LEAD_CODES for code in codes[:n_leads]):
                raise RecordError(
                    name, f"not a 12-lead ECG: an ISHNE Holter of {n_leads} lead(s), "
                    f"{', '.join(LEAD_CODES.get(c, f'code {c}') for c in codes[:n_leads])}",
                )  # fmt: skip
            i, j = 0, samples
            if segment is not None:
                i, j = segment_samples(*segment, samples, rate, name)
                j = min(j, samples)  # an end half a sample past the last rounds up to one more
            f.seek(ecg_offset + i * frame)
            raw = np.fromfile(f, dtype="<i2", count=(j - i) * n_leads).reshape(-1, n_leads)
    except FileNotFoundError:
        raise RecordError(name, "file not found") from None
    except OSError as exc:
        raise RecordError(name, f"unreadable file ({exc.strerror or exc})") from None
    if raw.shape[0] != j - i:  # the file shrank while it was read
        raise RecordError(name, f"ISHNE file ends before sample {j} (truncated?)")
    _check_missing(raw, i, rate, names, name)
    stored = struct.unpack_from("<H", head, 8)[0]
    if crc is None and warn is not None:
        warn.append(f"ISHNE header CRC not checked (a variable block of {var_size:,} bytes)")
    elif crc != stored and warn is not None:
        warn.append(f"ISHNE header CRC mismatch (stored {stored:#06x}, computed {crc:#06x}): "
                    "header damaged or edited?")  # fmt: skip
    scale = np.array(resolutions[:n_leads], dtype=np.float32) / np.float32(1e6)
    signal = raw.astype(np.float32)
    signal *= scale
    return signal, float(rate), names, ["mV"] * n_leads


def _magic_problem(head: bytes) -> str:
    if head[:8] == ANNOTATION_MAGIC:
        return "an ISHNE annotation file (ANN  1.0), not a recording: give its ISHNE1.0 ECG file"
    return (
        "not an ISHNE Holter file (it does not start with 'ISHNE1.0'; other vendors' .ecg formats "
        "are not read)"
    )


def _check_layout(
    var_size: int, samples: int, var_offset: int, ecg_offset: int, size: int, name: str
) -> None:
    """Refuse header sizes and offsets that no ISHNE file has, or that point past its end."""
    if var_size < 0:
        raise RecordError(name, f"ISHNE variable block of {var_size} bytes: expected 0 or more")
    if var_offset != HEADER_BYTES:
        raise RecordError(
            name, f"ISHNE variable block at byte {var_offset}: expected {HEADER_BYTES}"
        )
    if samples < 0:
        raise RecordError(name, f"ISHNE header says {samples} samples per lead")
    if not HEADER_BYTES + var_size <= ecg_offset <= size:
        raise RecordError(
            name,
            f"ISHNE ECG block at byte {ecg_offset}: expected one after the variable block "
            f"(byte {HEADER_BYTES + var_size}) within the file of {size} bytes",
        )


def _lead_names(codes: tuple[int, ...]) -> list[str]:
    """Names of the leads, those without a 12-lead name numbered ('bipolar 2') to stay apart."""
    names = []
    for k, code in enumerate(codes):
        label = LEAD_CODES.get(code, f"code {code}")
        names.append(label if code in TWELVE_LEAD_CODES else f"{label} {k + 1}")
    return names


def _check_missing(raw: np.ndarray, first: int, rate: float, names: list[str], name: str) -> None:
    """Refuse samples the recorder marked missing, saying where the first is (to pick a segment
    without it)."""
    missing = raw == MISSING
    if not missing.any():
        return
    row, lead = (int(v[0]) for v in np.nonzero(missing))
    raise RecordError(
        name,
        f"{int(missing.sum())} sample(s) marked missing ({MISSING}), the first in lead "
        f"{names[lead]} at {(first + row) / rate:g} s: choose a --segment without them",
    )
